package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

const chartDir = "helm/flowprobe"

// helm returns the helm binary deploy/helm/helm.sh builds into .build/,
// and skips the test when it has not been built: ./test.sh builds it once
// before the unit tests (`deploy/helm/helm.sh version`).
func helm(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile("helm/helm.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^version=(v[0-9.]+)$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("helm/helm.sh sets no version=")
	}
	bin := filepath.Join("..", ".build", "helm-"+string(m[1]), "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("helm is not built: run deploy/helm/helm.sh version once (./test.sh does)")
	}
	return bin
}

// helmTemplate renders the chart at dir with the given extra arguments and
// returns the objects by kind/name.
func helmTemplate(t *testing.T, dir string, args ...string) map[string]map[string]any {
	t.Helper()
	cmd := exec.Command(helm(t), append([]string{"template", "rel", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr.String())
	}
	objs := map[string]map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o map[string]any
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output: %v\n%s", err, out)
		}
		if o == nil {
			continue
		}
		objs[o["kind"].(string)+"/"+dig(o, "metadata", "name").(string)] = o
	}
	return objs
}

// podContainer returns the named container of a workload's pod template.
func podContainer(t *testing.T, w map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range dig(w, "spec", "template", "spec", "containers").([]any) {
		if c.(map[string]any)["name"] == name {
			return c.(map[string]any)
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

// checkFlowprobePod checks the flowprobe container of a rendered pod the way
// TestKubernetesObjectsSelectEachOther checks the manifests: non-root with
// every capability dropped (NET_RAW at most added back), probes on the
// metrics port, the config from the ConfigMap and each Secret mounted as
// files. mounts maps mount paths to the ConfigMap or Secret behind them.
func checkFlowprobePod(t *testing.T, what string, w map[string]any, mounts map[string]string) {
	t.Helper()
	fp := podContainer(t, w, "flowprobe")
	sc := fp["securityContext"]
	if dig(sc, "runAsNonRoot") != true || dig(sc, "runAsUser") != 65534 || dig(sc, "readOnlyRootFilesystem") != true ||
		dig(sc, "allowPrivilegeEscalation") != false || !reflect.DeepEqual(dig(sc, "capabilities", "drop"), []any{"ALL"}) {
		t.Errorf("%s: securityContext %v", what, sc)
	}
	if add, _ := dig(sc, "capabilities", "add").([]any); len(add) > 1 || len(add) == 1 && add[0] != "NET_RAW" {
		t.Errorf("%s: adds capabilities %v, NET_RAW at most", what, add)
	}
	if dig(fp, "readinessProbe", "httpGet", "path") != "/-/ready" || dig(fp, "livenessProbe", "httpGet", "path") != "/-/healthy" ||
		dig(fp, "readinessProbe", "httpGet", "port") != "http-metrics" || dig(fp, "livenessProbe", "httpGet", "port") != "http-metrics" {
		t.Errorf("%s: probes %v %v", what, fp["readinessProbe"], fp["livenessProbe"])
	}
	ports := fp["ports"].([]any)
	if len(ports) != 1 || dig(ports[0], "name") != "http-metrics" || dig(ports[0], "containerPort") != 9871 {
		t.Errorf("%s: ports %v, want http-metrics on 9871", what, ports)
	}
	var args []string
	for _, a := range fp["args"].([]any) {
		args = append(args, a.(string))
	}
	if args[0] != "serve" || !slices.Contains(args, "--config.file=/etc/flowprobe/flowprobe.yml") || !slices.Contains(args, "--web.enable-lifecycle") {
		t.Errorf("%s: args %v", what, args)
	}
	volumes := map[string]string{}
	for _, v := range dig(w, "spec", "template", "spec", "volumes").([]any) {
		src, _ := dig(v, "configMap", "name").(string)
		if s, ok := dig(v, "secret", "secretName").(string); ok {
			src = s
		}
		volumes[dig(v, "name").(string)] = src
	}
	got := map[string]string{}
	for _, m := range fp["volumeMounts"].([]any) {
		if dig(m, "readOnly") != true {
			t.Errorf("%s: mount %v is writable", what, m)
		}
		got[dig(m, "mountPath").(string)] = volumes[dig(m, "name").(string)]
	}
	if !reflect.DeepEqual(got, mounts) {
		t.Errorf("%s: mounts %v, want %v", what, got, mounts)
	}
}

// checkSelects checks that the Service selects the pods of w, the
// ServiceMonitor (if any) the Service and its port.
func checkSelects(t *testing.T, objs map[string]map[string]any, svcName string, w map[string]any) {
	t.Helper()
	svc := objs["Service/"+svcName]
	if svc == nil {
		t.Fatalf("no Service %s in %v", svcName, slices.Collect(maps.Keys(objs)))
	}
	labels := dig(w, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range dig(svc, "spec", "selector").(map[string]any) {
		if labels[k] != v {
			t.Errorf("Service selector %s=%v does not select the pods (%v)", k, v, labels)
		}
	}
	if sel, ok := dig(w, "spec", "selector", "matchLabels").(map[string]any); ok {
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("workload selector %s=%v does not select its own pods", k, v)
			}
		}
	}
	sm := objs["ServiceMonitor/"+svcName]
	if sm == nil {
		return
	}
	svcLabels := dig(svc, "metadata", "labels").(map[string]any)
	for k, v := range dig(sm, "spec", "selector", "matchLabels").(map[string]any) {
		if svcLabels[k] != v {
			t.Errorf("ServiceMonitor selector %s=%v does not select the Service", k, v)
		}
	}
	if port := dig(sm, "spec", "endpoints").([]any)[0].(map[string]any)["port"]; dig(svc, "spec", "ports").([]any)[0].(map[string]any)["name"] != port {
		t.Errorf("ServiceMonitor port %v is not the Service's port name", port)
	}
}

// checkSiteConfig plans the ConfigMap's flowprobe.yml and compares it with
// the values file's config it came from.
func checkSiteConfig(t *testing.T, cm map[string]any, want map[string]any) {
	t.Helper()
	cfg, ok := dig(cm, "data", "flowprobe.yml").(string)
	if !ok {
		t.Fatal("ConfigMap has no flowprobe.yml")
	}
	var got map[string]any
	if err := yaml.Unmarshal([]byte(cfg), &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigMap's flowprobe.yml is not the values' config (%v):\n%s", err, cfg)
	}
	c, err := site.ParseConfig("chart#flowprobe.yml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	if plan, err := site.Plan(cat, c, checks.Binder{}); err != nil || len(plan.Targets) == 0 {
		t.Errorf("the chart's site config plans no target: %v", err)
	}
}

// siteValues writes a values file whose config is an example site config,
// and returns it with that config decoded.
func siteValues(t *testing.T, extra string) (string, map[string]any) {
	t.Helper()
	example, err := os.ReadFile("examples/sios-lifekeeper.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(example, &cfg); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(map[string]any{"config": cfg})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, append(b, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

func TestHelmChartLints(t *testing.T) {
	bin := helm(t)
	for _, mode := range []string{"daemonset", "deployment", "sidecar"} {
		out, err := exec.Command(bin, "lint", "--strict", chartDir, "--set", "mode="+mode,
			"--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,secrets.existingSecret=s,webConfig.existingSecret=w").CombinedOutput()
		if err != nil {
			t.Errorf("helm lint --strict (mode %s): %v\n%s", mode, err, out)
		}
	}
	out, err := exec.Command(bin, "template", "rel", chartDir, "--set", "mode=statefulset").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `mode "statefulset": want daemonset, deployment or sidecar`) {
		t.Errorf("an unknown mode renders (%v):\n%s", err, out)
	}
}

// The DaemonSet and the Deployment, rendered with a site config, a Secret
// for the checks and a Secret for the web config, and the monitoring
// objects on.
func TestHelmChartWorkloads(t *testing.T) {
	for _, tc := range []struct{ mode, kind string }{{"daemonset", "DaemonSet"}, {"deployment", "Deployment"}} {
		t.Run(tc.mode, func(t *testing.T) {
			values, cfg := siteValues(t, "mode: "+tc.mode+`
secrets: {existingSecret: site-secrets}
webConfig: {existingSecret: site-web, scheme: HTTPS}
serviceMonitor: {enabled: true}
prometheusRule: {enabled: true}
`)
			objs := helmTemplate(t, chartDir, "-f", values)
			w := objs[tc.kind+"/rel-flowprobe"]
			if w == nil {
				t.Fatalf("no %s/rel-flowprobe in %v", tc.kind, slices.Collect(maps.Keys(objs)))
			}
			checkFlowprobePod(t, tc.kind, w, map[string]string{
				"/etc/flowprobe": "rel-flowprobe-config", "/etc/flowprobe/secrets": "site-secrets", "/etc/flowprobe/web": "site-web",
			})
			fp := podContainer(t, w, "flowprobe")
			if !slices.Contains(fp["args"].([]any), any("--web.config.file=/etc/flowprobe/web/web-config.yml")) {
				t.Errorf("args %v lack the web config", fp["args"])
			}
			if dig(fp, "livenessProbe", "httpGet", "scheme") != "HTTPS" || dig(objs["ServiceMonitor/rel-flowprobe"], "spec", "endpoints").([]any)[0].(map[string]any)["scheme"] != "https" {
				t.Error("with TLS on, the probes and the ServiceMonitor must use HTTPS")
			}
			hostNet := dig(w, "spec", "template", "spec", "hostNetwork") == true
			sysctl := dig(w, "spec", "template", "spec", "securityContext", "sysctls") != nil
			if tc.mode == "daemonset" && (!hostNet || sysctl) || tc.mode == "deployment" && (hostNet || !sysctl) {
				t.Errorf("%s: hostNetwork %v, ping_group_range sysctl %v", tc.mode, hostNet, sysctl)
			}
			checkSelects(t, objs, "rel-flowprobe", w)
			checkSiteConfig(t, objs["ConfigMap/rel-flowprobe-config"], cfg)
			checkChartRules(t, objs["PrometheusRule/rel-flowprobe"])
		})
	}
	// Off by default: the monitoring objects need prometheus-operator's CRDs.
	objs := helmTemplate(t, chartDir)
	for k := range objs {
		if strings.HasPrefix(k, "ServiceMonitor/") || strings.HasPrefix(k, "PrometheusRule/") {
			t.Errorf("%s rendered by default", k)
		}
	}
}

func checkChartRules(t *testing.T, pr map[string]any) {
	t.Helper()
	b, err := yaml.Marshal(dig(pr, "spec"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Groups []ruleGroup `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(spec.Groups, alertRules(t)) {
		t.Error("the chart's PrometheusRule differs from prometheus/alerts.yml")
	}
}

// The sidecar shape, used as a parent chart would: the chart vendored under
// charts/, an appliance Deployment with the helper templates' container,
// volumes and labels.
func TestHelmChartSidecar(t *testing.T) {
	helm(t)
	parent := t.TempDir()
	if err := os.CopyFS(filepath.Join(parent, "charts", "flowprobe"), os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: appliance\nversion: 1.0.0\n",
		"templates/appliance.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: appliance
spec:
  selector:
    matchLabels:
      app: appliance
  template:
    metadata:
      labels:
        app: appliance
        {{- include "flowprobe.sidecar.podLabels" (dict "Values" .Values.flowprobe "Release" .Release) | nindent 8 }}
    spec:
      securityContext:
        {{- include "flowprobe.sidecar.podSecurityContext" (dict "Values" .Values.flowprobe "Release" .Release) | nindent 8 }}
      containers:
        - name: appliance
          image: registry.example.org/vendor/appliance:1.0
        {{- include "flowprobe.sidecar.container" (dict "Values" .Values.flowprobe "Release" .Release) | nindent 8 }}
      volumes:
        {{- include "flowprobe.sidecar.volumes" (dict "Values" .Values.flowprobe "Release" .Release) | nindent 8 }}
`,
	}
	for name, content := range files {
		path := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	values, cfg := siteValues(t, "")
	b, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	// The parent's values nest the chart's under its name.
	nested := "flowprobe:\n  mode: sidecar\n  secrets: {existingSecret: site-secrets}\n  serviceMonitor: {enabled: true}\n" +
		strings.ReplaceAll("  "+strings.TrimSuffix(string(b), "\n"), "\n", "\n  ") + "\n"
	if err := os.WriteFile(values, []byte(nested), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := helmTemplate(t, parent, "-f", values)
	for k := range objs {
		if k == "DaemonSet/rel-flowprobe" || k == "Deployment/rel-flowprobe" {
			t.Errorf("sidecar mode renders %s", k)
		}
	}
	w := objs["Deployment/appliance"]
	if w == nil {
		t.Fatalf("no appliance Deployment in %v", slices.Collect(maps.Keys(objs)))
	}
	checkFlowprobePod(t, "appliance", w, map[string]string{"/etc/flowprobe": "rel-flowprobe-config", "/etc/flowprobe/secrets": "site-secrets"})
	if dig(w, "spec", "template", "spec", "securityContext", "sysctls") == nil {
		t.Error("the sidecar's pod does not open ping_group_range")
	}
	checkSelects(t, objs, "rel-flowprobe", w)
	checkSiteConfig(t, objs["ConfigMap/rel-flowprobe-config"], cfg)
}

// The chart carries a copy of alerts.yml (Helm reads files inside the chart
// only) and the image flowprobe's VERSION builds.
func TestHelmChartMatchesTheRepository(t *testing.T) {
	copied, err := os.ReadFile(chartDir + "/files/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(copied, orig) {
		t.Errorf("%s/files/alerts.yml differs from prometheus/alerts.yml: cp deploy/prometheus/alerts.yml deploy/%s/files/", chartDir, chartDir)
	}
	version, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(version))
	var chart struct {
		AppVersion string `yaml:"appVersion"`
	}
	var values struct {
		Image struct {
			Tag string `yaml:"tag"`
		} `yaml:"image"`
	}
	b, _ := os.ReadFile(chartDir + "/Chart.yaml")
	yaml.Unmarshal(b, &chart)
	b, _ = os.ReadFile(chartDir + "/values.yaml")
	yaml.Unmarshal(b, &values)
	if chart.AppVersion != v || values.Image.Tag != v {
		t.Errorf("chart appVersion %q, image.tag %q; VERSION is %q", chart.AppVersion, values.Image.Tag, v)
	}
}
