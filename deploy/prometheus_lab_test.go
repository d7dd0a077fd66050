//go:build lab

package deploy_test

import (
	"os/exec"
	"testing"
)

// The alert rules are valid and behave as their unit tests say, checked by
// Prometheus' own promtool (Debian's prometheus package, installed by
// deploy/testlab/lab.sh install).
func TestPromtoolRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: deploy/testlab/lab.sh install provides it (package prometheus)")
	}
	runPromtool(t, promtool)
}
