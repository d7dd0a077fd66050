//go:build lab

package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The alert rules of deploy/prometheus/alerts.yml and of Grafana's
// alerting, evaluated in a real Prometheus against the lab.

// alertWant is what an alert expression must return against the lab.
type alertWant struct {
	// label and values: the expression fires, for exactly these values
	// of label.
	label  string
	values []string
	// inner, when set, replaces firing: the expression must evaluate
	// without error and return nothing, and inner (the selector it is
	// built on) must return series for exactly values of label.
	inner string
}

// serveLabAlerts says, for every alert of deploy/prometheus/alerts.yml and
// deploy/grafana/alerting/flowprobe-alerts.yaml, what it returns while the
// lab site runs and after a failed reload.
//
// FlowprobeNTPOffsetTooLarge cannot fire here: the lab's chrony serves the
// host's own clock, which a test cannot move, so its offset is ~0. The test
// proves the expression evaluates and its metric has series of the real
// shape. FlowprobeCheckNotRun fires only for a check stuck for 15 minutes;
// the same applies.
//
// The flows of verdictSites fire FlowprobeDenyViolated and
// FlowprobeLocalError. The lab has no flow failing with dns_error,
// no_response, service_timeout or a non-NTP protocol_error, so those
// rules only evaluate; the catch-all FlowprobeFlowFailing stays quiet
// because every failing flow of the lab keeps its outcome.
var serveLabAlerts = map[string]alertWant{
	"FlowprobeDenyViolated":            {label: "flow", values: []string{"legacy-https"}},
	"FlowprobeLocalError":              {label: "flow", values: []string{"unbound-source"}},
	"FlowprobeDNSError":                {label: "flow", values: serveLabFlowIDs(), inner: "flowprobe_check_success"},
	"FlowprobeUDPNoResponse":           {label: "flow", values: serveLabFlowIDs(), inner: "flowprobe_check_success"},
	"FlowprobeServiceFailing":          {label: "flow", values: serveLabFlowIDs(), inner: "flowprobe_check_success"},
	"FlowprobeFlowFailing":             {label: "flow", values: serveLabFlowIDs(), inner: "flowprobe_check_success"},
	"FlowprobeFlowBlocked":             {label: "flow", values: []string{"web-http"}},
	"FlowprobeFlowRefused":             {label: "flow", values: []string{"echo"}},
	"FlowprobeAuthFailure":             {label: "flow", values: []string{"ldap-bind"}},
	"FlowprobeTLSError":                {label: "flow", values: []string{"portal-https"}},
	"FlowprobeTLSCertificateExpiring":  {label: "flow", values: []string{"portal-https"}},
	"FlowprobeNTPServerUnsynchronised": {label: "flow", values: []string{"ntp-backup"}},
	"FlowprobeConfigReloadFailed":      {label: "job", values: []string{serveLabJob}},
	"FlowprobeDown":                    {label: "job", values: []string{serveLabDeadJob}},
	"FlowprobeNTPOffsetTooLarge":       {label: "flow", values: []string{"ntp"}, inner: "flowprobe_ntp_offset_seconds"},
	"FlowprobeCheckNotRun":             {label: "flow", values: serveLabFlowIDs(), inner: "flowprobe_check_last_run_timestamp_seconds"},
}

// serveLabFlowIDs lists the ids of serveLabFlows, sorted.
func serveLabFlowIDs() []string {
	var ids []string
	for _, f := range serveLabFlows {
		ids = append(ids, f.id)
	}
	slices.Sort(ids)
	return ids
}

// labAlertsYML holds flowprobe's Prometheus alert rules.
const labAlertsYML = "../../deploy/prometheus/alerts.yml"

// labAlertExprs reads the alert expressions of both rule files, by file
// and alert name.
func labAlertExprs(t *testing.T) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	const prom = labAlertsYML
	var pf struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readLabYAML(t, prom, &pf)
	out[prom] = map[string]string{}
	for _, g := range pf.Groups {
		for _, r := range g.Rules {
			out[prom][r.Alert] = r.Expr
		}
	}
	const graf = "../../deploy/grafana/alerting/flowprobe-alerts.yaml"
	var gf struct {
		Groups []struct {
			Rules []struct {
				Title string `yaml:"title"`
				Data  []struct {
					RefID string `yaml:"refId"`
					Model struct {
						Expr string `yaml:"expr"`
					} `yaml:"model"`
				} `yaml:"data"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readLabYAML(t, graf, &gf)
	out[graf] = map[string]string{}
	for _, g := range gf.Groups {
		for _, r := range g.Rules {
			for _, d := range r.Data {
				if d.RefID == "A" {
					out[graf][r.Title] = d.Model.Expr
				}
			}
			if out[graf][r.Title] == "" {
				t.Errorf("%s: %s has no query A", graf, r.Title)
			}
		}
	}
	return out
}

func readLabYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestLabPrometheusAlertRules evaluates every alert expression of both rule
// files in a real Prometheus against a real flowprobe whose lab site has a
// blocked port, a closed port, a wrong LDAP password, an expired
// certificate and an unsynchronised NTP server, after a reload with a bad
// config and next to a scrape job that fails, and two more flowprobes: one
// with an open flow that must be blocked, one whose source address is not
// on this machine. Each alert returns exactly the series it is written for
// (the rules' `for` durations are Prometheus' business and not waited for).
func TestLabPrometheusAlertRules(t *testing.T) {
	s := startLabStack(t, verdictSites...)
	exprs := labAlertExprs(t)
	s.waitScraped(t)
	s.waitVerdicts(t)

	if err := os.WriteFile(s.config, []byte("site: lab\nproducts:\n  - nme: broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := httpDo(t, "POST", s.flowprobe+"/-/reload"); code != http.StatusInternalServerError {
		t.Fatalf("POST /-/reload with a bad config = %d %q, want 500", code, body)
	}
	poll(t, serveLabWait, "prometheus sees the failed reload", func() (bool, string) {
		got, err := s.prom.query(`flowprobe_config_last_reload_successful{job="flowprobe"} == 0`)
		return err == nil && len(got) == 1, fmt.Sprint(got, err)
	})

	for file, alerts := range exprs {
		for name, expr := range alerts {
			want, ok := serveLabAlerts[name]
			if !ok {
				t.Errorf("%s: alert %s is not covered by this test: add what it returns in the lab to serveLabAlerts", file, name)
				continue
			}
			got, err := s.prom.query(expr)
			if err != nil {
				t.Errorf("%s: %s: %v", file, name, err)
				continue
			}
			if want.inner != "" {
				if len(got) != 0 {
					t.Errorf("%s: %s fires in the lab: %v", file, name, got)
				}
				got = s.prom.mustQuery(t, want.inner+`{job="flowprobe"}`)
			}
			if values := labelSet(got, want.label); !slices.Equal(values, want.values) {
				t.Errorf("%s: %s returns series for %s %v, want %v:\n%s\n%v", file, name, want.label, values, want.values, expr, got)
			}
		}
	}
	// Prometheus itself evaluates alerts.yml: every rule is healthy, and
	// the alerts that fire in the lab are pending (their `for` has not run
	// out) for exactly the expected flows and jobs.
	wantPending := map[string][]string{}
	for name, want := range serveLabAlerts {
		if want.inner == "" {
			wantPending[name] = want.values
		}
	}
	poll(t, serveLabWait, "Prometheus' own evaluation of alerts.yml", func() (bool, string) {
		var d struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError, State string
					Alerts                         []struct {
						Labels map[string]string
						State  string
					}
				}
			}
		}
		if err := s.prom.promGet("/api/v1/rules", url.Values{"type": {"alert"}}, &d); err != nil {
			return false, err.Error()
		}
		got := map[string][]string{}
		var state []string
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				if r.Health == "err" {
					t.Fatalf("Prometheus evaluates %s with an error: %s", r.Name, r.LastError)
				}
				state = append(state, fmt.Sprintf("%s: %s %s", r.Name, r.Health, r.State))
				for _, a := range r.Alerts {
					if a.State == "pending" {
						got[r.Name] = append(got[r.Name], a.Labels[serveLabAlerts[r.Name].label])
					}
				}
				if r.Health != "ok" {
					return false, strings.Join(state, "; ")
				}
			}
		}
		for _, v := range got {
			slices.Sort(v)
		}
		return maps.EqualFunc(got, wantPending, slices.Equal), fmt.Sprintf("pending %v, want %v", got, wantPending)
	})

	for name := range serveLabAlerts {
		for file, alerts := range exprs {
			if _, ok := alerts[name]; !ok {
				t.Errorf("%s has no alert %s", file, name)
			}
		}
	}
}
