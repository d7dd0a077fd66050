// Package deploy_test checks that the files users copy into their setup
// agree with each other: the PrometheusRule and the Grafana alert rules carry
// exactly the alerts of deploy/prometheus/alerts.yml, the dashboard's queries
// use flowprobe's metrics and variables, and the Kubernetes objects select
// each other.
package deploy_test

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/probe"
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
