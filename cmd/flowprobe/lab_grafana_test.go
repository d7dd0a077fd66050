//go:build lab

package main

import (
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// The Grafana dashboard's queries, run in a real Prometheus that scrapes
// a flowprobe serving the lab site.

// TestLabDashboardQueries runs every query of the Grafana dashboard, with
// its variables substituted as Grafana does for "All", against a real
// Prometheus scraping the lab site: each parses and returns series, the
// variables list the lab's values, and the stat panels and the flow matrix
// show what the lab really does.
func TestLabDashboardQueries(t *testing.T) {
	s := startLabStack(t)
	var dash struct {
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []dashPanel `json:"panels"`
	}
	b, err := os.ReadFile("../../deploy/grafana/flowprobe.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("flowprobe.json: %v", err)
	}
	s.waitScraped(t)

	// Grafana's "All" of a regex-matched variable, and the rate interval
	// for a 1 s scrape interval (at least four scrapes).
	vars := map[string]string{"__rate_interval": "1m"}
	destinations := []string{}
	for _, f := range serveLabFlows {
		if !slices.Contains(destinations, f.destination) {
			destinations = append(destinations, f.destination)
		}
	}
	slices.Sort(destinations)
	wantValues := map[string][]string{"site": {"lab"}, "product": {serveLabProduct}, "source": {serveLabSelf}, "destination": destinations}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		vars[v.Name] = ".*"
	}
	subst := func(expr string) string {
		return regexp.MustCompile(`\$\{?(\w+)\}?`).ReplaceAllStringFunc(expr, func(m string) string {
			name := strings.Trim(m, "${}")
			v, ok := vars[name]
			if !ok {
				t.Errorf("unknown dashboard variable %s in %s", m, expr)
			}
			return v
		})
	}
	labelValues := regexp.MustCompile(`^label_values\((?:(.+),\s*)?(\w+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: definition %q is not label_values(...)", v.Name, v.Definition)
			continue
		}
		q := url.Values{}
		if m[1] != "" {
			q.Set("match[]", subst(m[1]))
		}
		var values []string
		if err := s.prom.promGet("/api/v1/label/"+m[2]+"/values", q, &values); err != nil {
			t.Errorf("variable %s (%s): %v", v.Name, v.Definition, err)
			continue
		}
		if !slices.Equal(values, wantValues[v.Name]) {
			t.Errorf("variable %s (%s) = %v, want %v", v.Name, v.Definition, values, wantValues[v.Name])
		}
	}

	// Values the panels must show for the lab site.
	var passing float64
	for _, f := range serveLabFlows {
		if f.outcome == probe.OutcomeOK {
			passing++
		}
	}
	stats := map[string]float64{
		"Flows passing": passing,
		"Flows failing": float64(len(serveLabFlows)) - passing,
		"Targets":       float64(len(serveLabFlows)),
		"Config reload": 1,
	}
	seen := map[string]bool{}
	queries := 0
	var walk func([]dashPanel)
	walk = func(panels []dashPanel) {
		for _, p := range panels {
			walk(p.Panels)
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					continue
				}
				queries++
				expr := subst(tg.Expr)
				got, err := s.prom.query(expr)
				switch {
				case err != nil:
					t.Errorf("panel %q: %v", p.Title, err)
					continue
				case len(got) == 0:
					t.Errorf("panel %q: no series for %s", p.Title, expr)
					continue
				}
				seen[p.Title] = true
				if want, ok := stats[p.Title]; ok && (len(got) != 1 || got[0].Value != want) {
					t.Errorf("panel %q = %v, want %v", p.Title, got, want)
				}
				if p.Title == "Flow matrix" {
					outcomes := map[string]string{}
					for _, g := range got {
						outcomes[g.Metric["flow"]] = g.Metric["outcome"]
						if want := serveLabOutcomes()[g.Metric["flow"]]; (want == "ok") != (g.Value == 1) {
							t.Errorf("flow matrix: %s %s has value %v", g.Metric["flow"], g.Metric["outcome"], g.Value)
						}
					}
					if want := serveLabOutcomes(); !maps.Equal(outcomes, want) {
						t.Errorf("flow matrix shows %v, want %v", outcomes, want)
					}
				}
			}
		}
	}
	walk(dash.Panels)
	if queries < 10 {
		t.Errorf("found only %d panel queries in the dashboard", queries)
	}
	for _, title := range append(slices.Collect(maps.Keys(stats)), "Flow matrix") {
		if !seen[title] {
			t.Errorf("no panel %q with series", title)
		}
	}
}

// dashPanel is a Grafana panel, possibly a row holding others.
type dashPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}
