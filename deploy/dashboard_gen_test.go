package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// The dashboard is written by deploy/grafana/gen (a module of its own, on
// the Grafana Foundation SDK): the committed file is what it writes now.
func TestDashboardIsGenerated(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run the dashboard generator")
	}
	out := filepath.Join(t.TempDir(), "flowprobe.json")
	cmd := exec.Command(goBin, "run", ".", "-o", out)
	cmd.Dir = filepath.Join("grafana", "gen")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./deploy/grafana/gen: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("grafana/flowprobe.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Error("deploy/grafana/flowprobe.json is not what deploy/grafana/gen writes: run make dashboard")
	}
}

// dashboardShape is what a user of the dashboard relies on, whatever
// writes it: each panel's title, type, queries and units, and the
// variables with their queries; units include those of overrides.
type dashboardShape struct {
	Panels    []string
	Queries   map[string][]string
	Units     map[string]string
	Variables []string
}

func readDashboardShape(t *testing.T, path string) dashboardShape {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title       string `json:"title"`
			Type        string `json:"type"`
			FieldConfig struct {
				Defaults struct {
					Unit string `json:"unit"`
				} `json:"defaults"`
				Overrides []struct {
					Matcher struct {
						ID      string `json:"id"`
						Options any    `json:"options"`
					} `json:"matcher"`
					Properties []struct {
						ID    string `json:"id"`
						Value any    `json:"value"`
					} `json:"properties"`
				} `json:"overrides"`
			} `json:"fieldConfig"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
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
		t.Fatalf("%s: %v", path, err)
	}
	s := dashboardShape{Queries: map[string][]string{}, Units: map[string]string{}}
	s.Panels = append(s.Panels, "uid "+d.UID)
	for _, p := range d.Panels {
		s.Panels = append(s.Panels, p.Type+" "+p.Title)
		s.Units[p.Title] = p.FieldConfig.Defaults.Unit
		for _, o := range p.FieldConfig.Overrides {
			for _, pr := range o.Properties {
				if pr.ID == "unit" {
					s.Units[p.Title] += fmt.Sprintf(", %s %v: %v", o.Matcher.ID, o.Matcher.Options, pr.Value)
				}
			}
		}
		for _, tg := range p.Targets {
			s.Queries[p.Title] = append(s.Queries[p.Title], tg.RefID+" "+tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		s.Variables = append(s.Variables, v.Type+" "+v.Name+" "+v.Definition)
	}
	slices.Sort(s.Panels)
	return s
}

// The generated dashboard has the panels, PromQL queries, units and
// variables of the hand-written one it replaced (kept in testdata), so
// the lab test of every panel's queries keeps its meaning.
func TestDashboardKeepsTheHandwrittenQueries(t *testing.T) {
	want := readDashboardShape(t, "testdata/flowprobe-dashboard-handwritten.json")
	got := readDashboardShape(t, "grafana/flowprobe.json")
	if !reflect.DeepEqual(got.Panels, want.Panels) {
		t.Errorf("panels:\n got %q\nwant %q", got.Panels, want.Panels)
	}
	for title, q := range want.Queries {
		if !slices.Equal(got.Queries[title], q) {
			t.Errorf("panel %q queries:\n got %q\nwant %q", title, got.Queries[title], q)
		}
	}
	for title := range got.Queries {
		if _, ok := want.Queries[title]; !ok {
			t.Errorf("panel %q is new", title)
		}
	}
	if !reflect.DeepEqual(got.Units, want.Units) {
		t.Errorf("units:\n got %v\nwant %v", got.Units, want.Units)
	}
	if !slices.Equal(got.Variables, want.Variables) {
		t.Errorf("variables:\n got %q\nwant %q", got.Variables, want.Variables)
	}
}
