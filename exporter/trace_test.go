package exporter

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

func blockedTrace() report.Trace {
	return report.Trace{
		Probe: "tcp/636", Destination: "192.0.2.10", BlockedHop: 3, LastHop: "10.91.2.2",
		Verdict: "answered up to hop 2 (10.91.2.2); hop 3 silent for tcp/636: a filter at or after 10.91.2.2 drops it",
		Paths:   []report.TracePath{{Probe: "tcp/636", Hops: []report.TraceHop{{TTL: 1, Address: "10.91.1.2", Reply: "time-exceeded"}}}},
	}
}

// A failed target's trace is exported, shown on the status page and in the
// JSON API; it goes away when the target passes again, and a trace of a
// removed, changed or passing target is not stored.
func TestTraceOfFailedTarget(t *testing.T) {
	e := New(Options{})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	s := e.Store()
	ldap, icmp := ldapTarget(), icmpTarget()
	s.SetTargets([]probe.Target{ldap, icmp})
	if s.SetTrace(ldap, start, blockedTrace()) {
		t.Error("a trace of a target without a result was stored")
	}
	s.Record(Record{Target: ldap, Result: timeoutResult("i/o timeout"), ConsecutiveFailures: 1})
	s.Record(Record{Target: icmp, Result: okResult(), Up: true})
	if s.SetTrace(icmp, start, blockedTrace()) {
		t.Error("a trace of a passing target was stored")
	}
	if !s.SetTrace(ldap, start.Add(2*time.Second), blockedTrace()) {
		t.Fatal("the trace of a failed target was not stored")
	}

	expected := `
# HELP flowprobe_path_blocked_hop Hop (TTL) at which the latest automatic path trace of the failed flow stops: the first silent or rejecting hop; 0 when the flow's packet reached the destination. Only for failed targets with a trace.
# TYPE flowprobe_path_blocked_hop gauge
flowprobe_path_blocked_hop{check="ldap",destination="directory",flow="ldap",port="636",product="sios-lifekeeper",protocol="tcp",source="node",target="dc1.example.org:636"} 3
# HELP flowprobe_path_last_hop_info Always 1: hop_address is the last router that answered the latest automatic path trace of the failed flow with Time Exceeded. Only for failed targets whose trace got such an answer.
# TYPE flowprobe_path_last_hop_info gauge
flowprobe_path_last_hop_info{check="ldap",destination="directory",flow="ldap",hop_address="10.91.2.2",port="636",product="sios-lifekeeper",protocol="tcp",source="node",target="dc1.example.org:636"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected), "flowprobe_path_blocked_hop", "flowprobe_path_last_hop_info"); err != nil {
		t.Fatal(err)
	}
	h := e.Handler(HandlerOptions{Gatherer: reg, Now: func() time.Time { return start.Add(62 * time.Second) }})
	_, metrics, _ := get(t, h, "GET", "/metrics")
	if !strings.Contains(metrics, strings.TrimSpace(strings.Split(expected, "\n")[3])) {
		t.Errorf("/metrics lacks the blocked hop:\n%s", metrics)
	}
	_, body, _ := get(t, h, "GET", "/api/v1/results")
	var got []struct {
		Target string        `json:"target"`
		Trace  *report.Trace `json:"trace"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		switch {
		case r.Target == "dc1.example.org:636" && (r.Trace == nil || r.Trace.BlockedHop != 3 || r.Trace.LastHop != "10.91.2.2" || !r.Trace.Time.Equal(start.Add(2*time.Second))):
			t.Errorf("/api/v1/results: trace of the failed target %+v, want blocked at hop 3 after 10.91.2.2", r.Trace)
		case r.Target != "dc1.example.org:636" && r.Trace != nil:
			t.Errorf("/api/v1/results: a trace for the passing target %s", r.Target)
		}
	}
	_, page, _ := get(t, h, "GET", "/")
	if !strings.Contains(page, "(traced 1m ago): answered up to hop 2 (10.91.2.2); hop 3 silent") {
		t.Errorf("status page lacks the trace verdict of the failed flow:\n%s", page)
	}

	// Passing again: the trace explained a failure that is over.
	s.Record(Record{Target: ldap, Result: okResult(), Up: true})
	if n := testutil.CollectAndCount(e, "flowprobe_path_blocked_hop", "flowprobe_path_last_hop_info"); n != 0 {
		t.Errorf("%d trace series after the target passed, want none", n)
	}

	// A changed target starts over, and a late trace of its old settings
	// or of a removed target is dropped.
	s.Record(Record{Target: ldap, Result: timeoutResult("i/o timeout"), ConsecutiveFailures: 1})
	s.SetTrace(ldap, start, blockedTrace())
	ldap2 := ldap
	ldap2.Options = &secretOptions{BindDN: "cn=other"}
	s.SetTargets([]probe.Target{ldap2})
	s.Record(Record{Target: ldap2, Result: timeoutResult("i/o timeout"), ConsecutiveFailures: 1})
	if n := testutil.CollectAndCount(e, "flowprobe_path_blocked_hop"); n != 0 {
		t.Errorf("%d blocked-hop series after the target changed, want none", n)
	}
	if s.SetTrace(ldap, start, blockedTrace()) || s.SetTrace(icmp, start, blockedTrace()) {
		t.Error("a trace of a changed or removed target was stored")
	}

	// A trace that could not run has a verdict but exports no hop.
	if !s.SetTrace(ldap2, start, report.TraceError("tcp/636", "dc1.example.org", errIO)) {
		t.Fatal("the failed trace of a failed target was not stored")
	}
	if n := testutil.CollectAndCount(e, "flowprobe_path_blocked_hop", "flowprobe_path_last_hop_info"); n != 0 {
		t.Errorf("%d trace series for a trace that could not run, want none", n)
	}
}

var errIO = errors.New("no route to host")
