// Package deploy_test checks that the files users copy into their setup
// agree with each other: the PrometheusRule and the Grafana alert rules carry
// exactly the alerts of deploy/prometheus/alerts.yml, the dashboard's queries
// use flowprobe's metrics and variables, and the Kubernetes objects select
// each other.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func alertRules(t *testing.T) []ruleGroup {
	var f struct {
		Groups []ruleGroup `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &f)
	return f.Groups
}

// The alerts flowprobe ships, by name.
var wantAlerts = []string{
	"FlowprobeAuthFailure", "FlowprobeCheckNotRun", "FlowprobeConfigReloadFailed", "FlowprobeDNSError",
	"FlowprobeDenyViolated", "FlowprobeDown", "FlowprobeFlowBlocked", "FlowprobeFlowFailing",
	"FlowprobeFlowRefused", "FlowprobeLocalError", "FlowprobeNTPOffsetTooLarge",
	"FlowprobeNTPServerUnsynchronised", "FlowprobeServiceFailing", "FlowprobeTLSCertificateExpiring",
	"FlowprobeTLSError", "FlowprobeUDPNoResponse",
}

// The teams an alert may be routed to, and the severities.
var (
	alertTeams      = []string{"dns", "flowprobe", "network", "service"}
	alertSeverities = []string{"critical", "warning"}
)

func TestAlertRulesNameEveryFlowLabel(t *testing.T) {
	var names []string
	for _, g := range alertRules(t) {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" || r.Annotations["runbook"] == "" {
				t.Errorf("%s: needs a summary, a description and a runbook hint", r.Alert)
			}
			if !slices.Contains(alertTeams, r.Labels["team"]) || !slices.Contains(alertSeverities, r.Labels["severity"]) || len(r.Labels) != 2 {
				t.Errorf("%s: labels %v, want exactly team (one of %v) and severity (one of %v)", r.Alert, r.Labels, alertTeams, alertSeverities)
			}
			if !strings.HasPrefix(r.Expr, "flowprobe_") && !strings.Contains(r.Expr, "(flowprobe_") &&
				!strings.Contains(r.Expr, "time() - flowprobe_") && !strings.Contains(r.Expr, "abs(flowprobe_") &&
				!strings.HasPrefix(r.Expr, "up{") {
				t.Errorf("%s: expression %q does not start from a flowprobe metric", r.Alert, r.Expr)
			}
			if g.Name == "flowprobe-self" {
				continue
			}
			for _, l := range []string{"product", "flow", "source", "destination", "target"} {
				if !strings.Contains(r.Annotations["summary"], "$labels."+l) {
					t.Errorf("%s: summary does not name %s", r.Alert, l)
				}
			}
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, wantAlerts) {
		t.Errorf("alerts = %v, want %v", names, wantAlerts)
	}
}

// The outcome vocabulary of DESIGN.md: probe's outcomes and the ones the
// alert rules already know.
func outcomeVocabulary() []string {
	v := []string{"service_timeout", "local_error"}
	for _, o := range probe.Outcomes() {
		if !slices.Contains(v, o.String()) {
			v = append(v, o.String())
		}
	}
	slices.Sort(v)
	return v
}

// Every failing outcome has a rule of its own, and the catch-all
// FlowprobeFlowFailing stands aside for exactly those outcomes: a flow that
// fails with one outcome fires that outcome's rule, and never the catch-all
// as well. A flow that must be blocked and is open fires the deny rule, the
// one critical flow alert.
func TestAlertRulesCoverEveryOutcomeOnce(t *testing.T) {
	rules := map[string]rule{}
	for _, g := range alertRules(t) {
		for _, r := range g.Rules {
			rules[r.Alert] = r
		}
	}
	selector := regexp.MustCompile(`flowprobe_check_outcome\{([^}]*)\}`)
	outcomeRE := regexp.MustCompile(`outcome=~?"([^"]+)"`)
	covered := map[string][]string{}
	for name, r := range rules {
		if name == "FlowprobeFlowFailing" || name == "FlowprobeDenyViolated" {
			continue
		}
		// The outcomes a rule fires for are those of its first selector.
		m := selector.FindStringSubmatch(r.Expr)
		if m == nil || !strings.HasPrefix(strings.TrimLeft(r.Expr, "( "), m[0]) && name != "FlowprobeNTPServerUnsynchronised" {
			continue
		}
		for o := range strings.SplitSeq(outcomeRE.FindStringSubmatch(m[1])[1], "|") {
			covered[o] = append(covered[o], name)
		}
	}
	var failing []string
	for _, o := range outcomeVocabulary() {
		if o == "ok" {
			continue
		}
		failing = append(failing, o)
		if len(covered[o]) == 0 {
			t.Errorf("no alert rule fires for outcome %s", o)
		}
	}
	catchAll := rules["FlowprobeFlowFailing"].Expr
	if !strings.HasPrefix(catchAll, "(flowprobe_check_success == 0)") {
		t.Errorf("FlowprobeFlowFailing does not start from every failing flow: %s", catchAll)
	}
	m := regexp.MustCompile(`min_over_time\(flowprobe_check_outcome\{outcome=~"([^"]+)"\}`).FindStringSubmatch(catchAll)
	if m == nil {
		t.Fatalf("FlowprobeFlowFailing does not leave out the outcomes the other rules cover: %s", catchAll)
	}
	standsAside := strings.Split(m[1], "|")
	slices.Sort(standsAside)
	if !slices.Equal(standsAside, failing) {
		t.Errorf("FlowprobeFlowFailing stands aside for %v, want every failing outcome %v", standsAside, failing)
	}
	deny := rules["FlowprobeDenyViolated"]
	if deny.Labels["severity"] != "critical" || rules["FlowprobeFlowBlocked"].Labels["severity"] == "critical" {
		t.Errorf("a deny violation (%s) must rank above a blocked flow (%s)", deny.Labels["severity"], rules["FlowprobeFlowBlocked"].Labels["severity"])
	}
	for name, r := range rules {
		if covers := slices.ContainsFunc([]string{"FlowprobeFlowBlocked", "FlowprobeFlowRefused", "FlowprobeUDPNoResponse",
			"FlowprobeServiceFailing", "FlowprobeAuthFailure", "FlowprobeTLSError"}, func(n string) bool { return n == name }); covers &&
			!strings.Contains(r.Expr, "unless ignoring(outcome) (flowprobe_check_expect_deny == 1)") {
			t.Errorf("%s also fires for flows that must be blocked, next to FlowprobeDenyViolated", name)
		}
	}
}

func TestPrometheusRuleCarriesAlertsYML(t *testing.T) {
	var pr struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Groups []ruleGroup `yaml:"groups"`
		} `yaml:"spec"`
	}
	readYAML(t, "kubernetes/prometheusrule.yaml", &pr)
	if pr.Kind != "PrometheusRule" || pr.APIVersion != "monitoring.coreos.com/v1" {
		t.Fatalf("kind %s/%s", pr.APIVersion, pr.Kind)
	}
	if !reflect.DeepEqual(pr.Spec.Groups, alertRules(t)) {
		t.Error("kubernetes/prometheusrule.yaml differs from prometheus/alerts.yml; regenerate it")
	}
}

// grafanaRules reads the Grafana-managed alert rules, checks the parts that
// are Grafana's own (query A on the "prometheus" data source, condition B,
// "no data" is OK, unique uids), and returns them in the form of
// alerts.yml: title as alert, query A as expr, $values.A.Value as $value.
func grafanaRules(t *testing.T) []ruleGroup {
	t.Helper()
	var f struct {
		APIVersion int `yaml:"apiVersion"`
		Groups     []struct {
			OrgID    int    `yaml:"orgId"`
			Name     string `yaml:"name"`
			Folder   string `yaml:"folder"`
			Interval string `yaml:"interval"`
			Rules    []struct {
				UID       string `yaml:"uid"`
				Title     string `yaml:"title"`
				Condition string `yaml:"condition"`
				Data      []struct {
					RefID             string         `yaml:"refId"`
					RelativeTimeRange map[string]int `yaml:"relativeTimeRange"`
					DatasourceUID     string         `yaml:"datasourceUid"`
					Model             map[string]any `yaml:"model"`
				} `yaml:"data"`
				NoDataState  string            `yaml:"noDataState"`
				ExecErrState string            `yaml:"execErrState"`
				For          string            `yaml:"for"`
				Labels       map[string]string `yaml:"labels"`
				Annotations  map[string]string `yaml:"annotations"`
				IsPaused     bool              `yaml:"isPaused"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "grafana/alerting/flowprobe-alerts.yaml", &f)
	value := strings.NewReplacer("{{ humanizeDuration $values.A.Value }}", "{{ $value | humanizeDuration }}", "$values.A.Value", "$value")
	uids := map[string]bool{}
	var out []ruleGroup
	for _, g := range f.Groups {
		pg := ruleGroup{Name: g.Name}
		for _, r := range g.Rules {
			if uids[r.UID] || r.UID == "" {
				t.Errorf("%s: uid %q is empty or used twice", r.Title, r.UID)
			}
			uids[r.UID] = true
			if len(r.Data) != 2 || r.Data[0].RefID != "A" || r.Condition != "B" || r.Data[1].Model["expression"] != "is_number($A)" {
				t.Errorf("%s: want query A and condition B = is_number($A)", r.Title)
				continue
			}
			if r.Data[0].DatasourceUID != "prometheus" || r.NoDataState != "OK" || r.IsPaused {
				t.Errorf("%s: datasource %q noDataState %q paused %v", r.Title, r.Data[0].DatasourceUID, r.NoDataState, r.IsPaused)
			}
			expr, _ := r.Data[0].Model["expr"].(string)
			pr := rule{Alert: r.Title, Expr: strings.TrimSpace(expr), For: r.For, Labels: r.Labels, Annotations: map[string]string{}}
			for k, v := range r.Annotations {
				pr.Annotations[k] = value.Replace(v)
			}
			pg.Rules = append(pg.Rules, pr)
		}
		out = append(out, pg)
	}
	return out
}

// The Grafana copy has the same groups, rules, queries, `for`, labels and
// annotations as alerts.yml, in the same order.
func TestGrafanaAlertsUseTheSameQueries(t *testing.T) {
	want := alertRules(t)
	for i := range want {
		for j := range want[i].Rules {
			want[i].Rules[j].Expr = strings.TrimSpace(want[i].Rules[j].Expr)
		}
	}
	got := grafanaRules(t)
	if !reflect.DeepEqual(got, want) {
		for _, g := range got {
			for _, r := range g.Rules {
				found := false
				for _, wg := range want {
					for _, w := range wg.Rules {
						if w.Alert == r.Alert {
							found = true
							if !reflect.DeepEqual(r, w) || g.Name != wg.Name {
								t.Errorf("grafana %s/%s differs from alerts.yml %s/%s:\n%+v\n%+v", g.Name, r.Alert, wg.Name, w.Alert, r, w)
							}
						}
					}
				}
				if !found {
					t.Errorf("grafana rule %s is not in alerts.yml", r.Alert)
				}
			}
		}
		t.Error("grafana/alerting/flowprobe-alerts.yaml differs from prometheus/alerts.yml (groups, order or rules)")
	}
}

// DashboardQueries returns every PromQL query of the dashboard (panels and
// variables), as written.
func dashboardQueries(t *testing.T) (panels map[string][]string, vars map[string]string) {
	t.Helper()
	b, err := os.ReadFile("grafana/flowprobe.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/flowprobe.json: %v", err)
	}
	panels = map[string][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			panels[p.Title] = append(panels[p.Title], tg.Expr)
		}
	}
	vars = map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Definition
	}
	return panels, vars
}

func TestDashboardHasTheViewsAndVariables(t *testing.T) {
	panels, vars := dashboardQueries(t)
	for _, v := range []string{"site", "product", "source", "destination"} {
		if vars[v] == "" {
			t.Errorf("variable %s missing", v)
		}
	}
	for _, title := range []string{"Flow matrix", "State over time", "Failures by outcome", "Latency by flow", "TLS certificate expiry", "NTP offset"} {
		if len(panels[title]) == 0 {
			t.Errorf("panel %q missing", title)
		}
	}
	sel := regexp.MustCompile(`flowprobe_check_\w+\{[^}]*\}`)
	for title, exprs := range panels {
		for _, e := range exprs {
			for _, m := range sel.FindAllString(e, -1) {
				for _, v := range []string{"$site", "$product", "$source", "$destination"} {
					if !strings.Contains(m, v) {
						t.Errorf("panel %q: %s ignores %s", title, m, v)
					}
				}
			}
		}
	}
}

// The panel of failures by outcome gives every outcome of the vocabulary a
// colour of its own (ok counts the runs of a flow that must be blocked and
// got through).
func TestDashboardColoursEveryOutcome(t *testing.T) {
	b, err := os.ReadFile("grafana/flowprobe.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title       string `json:"title"`
			FieldConfig struct {
				Overrides []struct {
					Matcher struct {
						ID      string `json:"id"`
						Options string `json:"options"`
					} `json:"matcher"`
					Properties []struct {
						ID    string          `json:"id"`
						Value json.RawMessage `json:"value"`
					} `json:"properties"`
				} `json:"overrides"`
			} `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	colours := map[string]string{}
	for _, p := range d.Panels {
		if p.Title != "Failures by outcome" {
			continue
		}
		for _, o := range p.FieldConfig.Overrides {
			for _, pr := range o.Properties {
				var c struct {
					Mode       string `json:"mode"`
					FixedColor string `json:"fixedColor"`
				}
				if o.Matcher.ID == "byName" && pr.ID == "color" && json.Unmarshal(pr.Value, &c) == nil && c.Mode == "fixed" {
					colours[o.Matcher.Options] = c.FixedColor
				}
			}
		}
	}
	used := map[string]string{}
	for _, o := range outcomeVocabulary() {
		c := colours[o]
		if c == "" {
			t.Errorf("Failures by outcome: no colour for %s", o)
		} else if used[c] != "" {
			t.Errorf("Failures by outcome: %s and %s share the colour %s", used[c], o, c)
		}
		used[c] = o
	}
}

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

func TestSystemdUnitIsHardened(t *testing.T) {
	b, err := os.ReadFile("systemd/flowprobe.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"\nAmbientCapabilities=CAP_NET_RAW\n", "\nCapabilityBoundingSet=CAP_NET_RAW\n",
		"\nExecReload=/bin/kill -HUP $MAINPID\n", "\nProtectSystem=strict\n", "\nPrivateTmp=yes\n",
		"\nNoNewPrivileges=yes\n", "\nDynamicUser=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
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
