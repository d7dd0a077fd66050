package deploy_test

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

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
