//go:build lab

package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit has systemd itself read the unit: it must verify clean,
// and its exposure score (systemd-analyze security, 0 safest to 10) must
// stay low, as a hardened unit's does.
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze not found: deploy/testlab/lab.sh install provides systemd")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flowprobe")
	build := exec.Command("go", "build", "-o", bin, "../cmd/flowprobe")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile("systemd/flowprobe.service")
	if err != nil {
		t.Fatal(err)
	}
	// The unit names the installed path; point it at the binary just built.
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/flowprobe", bin)
	path := filepath.Join(dir, "flowprobe.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// --threshold is on the 0..100 scale of the score ×10: 20 means 2.0.
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
}
