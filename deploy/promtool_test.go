package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// runPromtool checks the alert rules and runs their unit tests with
// Prometheus' own promtool, on alerts.yml and on the Grafana-managed copy
// turned back into a Prometheus rule file: both fire the same alerts, with
// the same labels and annotations, for every case of alerts_test.yml.
func runPromtool(t *testing.T, promtool string) {
	t.Helper()
	grafana := t.TempDir()
	b, err := yaml.Marshal(map[string]any{"groups": grafanaRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"alerts.yml": b, "alerts_test.yml": tests} {
		if err := os.WriteFile(filepath.Join(grafana, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
		{"check", "rules", filepath.Join(grafana, "alerts.yml")},
		{"test", "rules", filepath.Join(grafana, "alerts_test.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestPromtoolRulesIfInstalled runs promtool where it is installed (Debian
// package prometheus); the lab test requires it.
func TestPromtoolRulesIfInstalled(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	runPromtool(t, promtool)
}
