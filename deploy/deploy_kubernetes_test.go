package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// k8sObjects decodes every document of every file under kubernetes/.
func k8sObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o map[string]any
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			md := o["metadata"].(map[string]any)
			objs[o["kind"].(string)+"/"+md["name"].(string)] = o
		}
	}
	return objs
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func TestKubernetesObjectsSelectEachOther(t *testing.T) {
	objs := k8sObjects(t)
	for _, k := range []string{"Deployment/appliance", "DaemonSet/flowprobe", "StatefulSet/flowprobe-shard", "Service/flowprobe",
		"ServiceMonitor/flowprobe", "PrometheusRule/flowprobe", "ConfigMap/flowprobe-config", "Secret/flowprobe-secrets"} {
		if objs[k] == nil {
			t.Fatalf("%s missing from deploy/kubernetes", k)
		}
	}
	svc := objs["Service/flowprobe"]
	selector := dig(svc, "spec", "selector").(map[string]any)
	for _, w := range []string{"Deployment/appliance", "DaemonSet/flowprobe", "StatefulSet/flowprobe-shard"} {
		labels := dig(objs[w], "spec", "template", "metadata", "labels").(map[string]any)
		for k, v := range selector {
			if labels[k] != v {
				t.Errorf("Service selector %s=%v does not select %s", k, v, w)
			}
		}
		var fp map[string]any
		for _, c := range dig(objs[w], "spec", "template", "spec", "containers").([]any) {
			if c.(map[string]any)["name"] == "flowprobe" {
				fp = c.(map[string]any)
			}
		}
		if fp == nil {
			t.Fatalf("%s has no flowprobe container", w)
		}
		if dig(fp, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: flowprobe must run as non-root", w)
		}
		var mounts []string
		for _, m := range fp["volumeMounts"].([]any) {
			mounts = append(mounts, m.(map[string]any)["mountPath"].(string))
		}
		if !slices.Contains(mounts, "/etc/flowprobe") || !slices.Contains(mounts, "/etc/flowprobe/secrets") {
			t.Errorf("%s: config and secrets must be mounted as files, got %v", w, mounts)
		}
	}
	sts := objs["StatefulSet/flowprobe-shard"]
	if dig(sts, "spec", "serviceName") != dig(svc, "metadata", "name") {
		t.Error("StatefulSet/flowprobe-shard must name the headless Service")
	}
	shards := fmt.Sprintf("/%v", dig(sts, "spec", "replicas"))
	args := dig(sts, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)["args"].([]any)
	if !slices.Contains(args, any("--shard=$(SHARD_INDEX)"+shards)) {
		t.Errorf("StatefulSet/flowprobe-shard args %v: want --shard=$(SHARD_INDEX)%s, the pod ordinal of spec.replicas", args, shards)
	}
	svcLabels := dig(svc, "metadata", "labels").(map[string]any)
	sm := objs["ServiceMonitor/flowprobe"]
	for k, v := range dig(sm, "spec", "selector", "matchLabels").(map[string]any) {
		if svcLabels[k] != v {
			t.Errorf("ServiceMonitor selector %s=%v does not select the Service", k, v)
		}
	}
	port := dig(sm, "spec", "endpoints").([]any)[0].(map[string]any)["port"]
	if dig(svc, "spec", "ports").([]any)[0].(map[string]any)["name"] != port {
		t.Errorf("ServiceMonitor port %v is not the Service's port name", port)
	}
}

func TestConfigMapHoldsAValidSiteConfig(t *testing.T) {
	objs := k8sObjects(t)
	cfg, ok := dig(objs["ConfigMap/flowprobe-config"], "data", "flowprobe.yml").(string)
	if !ok {
		t.Fatal("ConfigMap flowprobe-config has no flowprobe.yml")
	}
	c, err := site.ParseConfig("configmap.yaml#flowprobe.yml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := site.Plan(cat, c, checks.Binder{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Targets) == 0 {
		t.Error("the ConfigMap's config plans no target")
	}
}
