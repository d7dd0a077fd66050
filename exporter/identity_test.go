package exporter

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowprobe/flowprobe/probe"
)

// caOptions stands for decoded options that never compare equal, as an
// x509.CertPool (it holds funcs) decoded from a ca_file.
type caOptions struct{ pool func() }

// planned returns a copy of t as a reload plans it: freshly decoded
// options and the fingerprint fp.
func planned(t probe.Target, fp byte) probe.Target {
	t.Options = &caOptions{pool: func() {}}
	t.Fingerprint = probe.Fingerprint{fp}
	return t
}

// A reload of an identical config keeps the result and counters of a
// target whose options never compare equal; a changed fingerprint (a new
// CA file, a changed option) starts the target over.
func TestReloadKeepsTargetsWithTheSameFingerprint(t *testing.T) {
	e := New(Options{})
	s := e.Store()
	tls := planned(ldapTarget(), 1)
	s.SetTargets([]probe.Target{tls})
	s.Record(Record{Target: tls, Result: timeoutResult("x"), ConsecutiveFailures: 1})
	s.Record(Record{Target: tls, Result: okResult(), Up: true})
	expected := `
# HELP flowprobe_checks_total Runs of the check since the target was configured.
# TYPE flowprobe_checks_total counter
flowprobe_checks_total{check="ldap",destination="directory",flow="ldap",port="636",product="sios-lifekeeper",protocol="tcp",source="node",target="dc1.example.org:636"} 2
`
	s.SetTargets([]probe.Target{planned(ldapTarget(), 1)})
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected), "flowprobe_checks_total"); err != nil {
		t.Fatalf("after reloading an identical config: %v", err)
	}
	if got := testutil.CollectAndCount(e, "flowprobe_check_success"); got != 1 {
		t.Fatalf("%d success series after reloading an identical config, want 1", got)
	}
	s.SetTargets([]probe.Target{planned(ldapTarget(), 2)})
	if got := testutil.CollectAndCount(e, "flowprobe_check_success", "flowprobe_checks_total"); got != 0 {
		t.Fatalf("%d series after a changed fingerprint, want none until the target runs again", got)
	}
}
