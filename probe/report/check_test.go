package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/site"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixture is a run of five targets over two products and three
// destinations: a pass, an optional failure with a reason and a detail, a
// deny flow that was blocked, a refusal, and a responder's answer; and two
// flows not checked.
func fixture() (*catalog, *planResult, []probe.Result) {
	cat := &catalog{Products: []*probe.Product{{Name: "sios-lifekeeper", Title: "SIOS LifeKeeper for Linux"}}}
	targets := []probe.Target{
		{ID: "a", Product: "sios-lifekeeper", Flow: "comm-path", Source: "node", Destination: "node", Host: "192.0.2.42", Port: 7365, Protocol: probe.TCP, Check: "tcp", Required: probe.Conditional},
		{ID: "b", Product: "sios-lifekeeper", Flow: "web-gui", Source: "web-client", Destination: "node", Host: "192.0.2.42", Port: 778, Protocol: probe.TCP, Check: "http", Required: probe.Optional},
		{ID: "c", Product: "sios-lifekeeper", Flow: "lkping", Source: "node", Destination: "node", Host: "192.0.2.42", Protocol: probe.ICMP, Check: "icmp", Expect: probe.ExpectDeny, Required: probe.Conditional},
		{ID: "d", Product: "other", Flow: "tls-api", Source: "api-client", Destination: "api", Host: "2001:db8::1", Port: 443, Protocol: probe.TCP, Check: "tls", Required: probe.Required},
		{ID: "e", Product: "sios-lifekeeper", Flow: "resp", Source: "node", Destination: "app", Host: "192.0.2.43", Port: 9, Protocol: probe.UDP, Check: "udp", Required: probe.Required},
	}
	start := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	results := []probe.Result{
		{Outcome: probe.OutcomeOK, Success: true, Start: start, Duration: 1500 * time.Microsecond},
		{Outcome: probe.OutcomeProtocolError, Start: start, Duration: 2 * time.Second, Err: errors.New("http: got `HTTP/1.0` status 500"), Details: map[string]string{probe.DetailReason: "status 500", "banner": "nginx"}, Values: map[string]float64{"tls_cert_not_after_timestamp_seconds": 1.7e9, "rtt_seconds": 0.25}, Phases: [probe.NumPhases]time.Duration{probe.PhaseConnect: time.Millisecond}},
		{Outcome: probe.OutcomeTimeout, Success: true, Start: start, Duration: 3 * time.Second},
		{Outcome: probe.OutcomeRefused, Start: start, Duration: 250 * time.Microsecond, Err: errors.New("dial tcp [2001:db8::1]:443: connect: connection refused")},
		{Outcome: probe.OutcomeOK, Success: true, Start: start, Duration: 12 * time.Millisecond, Details: map[string]string{probe.DetailResponder: "true"}},
	}
	skipped := []skip{
		{Product: "sios-lifekeeper", Flow: "comm-path", Source: "node", Destination: "node", Host: "192.0.2.41", Code: site.SkipOwnHost, Reason: "192.0.2.41 is one of self_addresses"},
		{Product: "sios-lifekeeper", Flow: "data-replication", Source: "node", Destination: "node", Port: "10001-65535", Code: "range_rest", Reason: "only the first port 10001 of the range is checked (ranges: first)"},
	}
	return cat, &planResult{Targets: targets, Skipped: skipped}, results
}

// golden compares got with testdata/name.golden.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
	}
}

// Every format of the check report, with and without --fail-optional,
// byte for byte.
func TestCheckGolden(t *testing.T) {
	cat, plan, results := fixture()
	for _, failOptional := range []bool{false, true} {
		rep := NewCheck(cat, plan, results, failOptional)
		for _, format := range []string{"text", "json", "markdown", "junit"} {
			var b bytes.Buffer
			if err := rep.Write(&b, format); err != nil {
				t.Fatal(err)
			}
			name := "check-" + format
			if failOptional {
				name += "-failopt"
			}
			golden(t, name, b.Bytes())
		}
	}
	if err := NewCheck(cat, plan, results, false).Write(&bytes.Buffer{}, "yaml"); err == nil {
		t.Error("an unknown format is no error")
	}
}

func TestCheckSummaryAndVerdict(t *testing.T) {
	cat, plan, results := fixture()
	rep := NewCheck(cat, plan, results, false)
	if got, want := rep.Summary(), "3 passed, 2 failed, 2 skipped (1 of the failures are optional flows and do not fail the run)"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if !rep.Failed() {
		t.Error("a refused required flow does not fail the run")
	}
	plan.Targets, results = plan.Targets[:3], results[:3]
	if NewCheck(cat, plan, results, false).Failed() || !NewCheck(cat, plan, results, true).Failed() {
		t.Error("an optional failure must fail the run only with failOptional")
	}
}

// The text of `flowprobe probe`, byte for byte.
func TestResultTextGolden(t *testing.T) {
	_, plan, results := fixture()
	for i, tg := range plan.Targets {
		var b bytes.Buffer
		if err := WriteResultText(&b, tg, results[i]); err != nil {
			t.Fatal(err)
		}
		golden(t, "probe-text-"+tg.ID, b.Bytes())
	}
}

// The JSON form of a result names the address, keeps only the phases that
// ran, and never has null details.
func TestNewResult(t *testing.T) {
	r := probe.Result{Outcome: probe.OutcomeTimeout, Success: true, Err: errors.New("i/o timeout"),
		Phases: [probe.NumPhases]time.Duration{probe.PhaseConnect: time.Millisecond}}
	rep := NewResult(probe.Target{Host: "192.0.2.1", Port: 22, Check: "ssh"}, r)
	if rep.Target != "192.0.2.1:22" || rep.Phases["connect"] != 0.001 || len(rep.Phases) != 1 ||
		rep.Details == nil || rep.Error != "i/o timeout" || rep.Outcome != probe.OutcomeTimeout || !rep.Success {
		t.Errorf("report %+v", rep)
	}
}

// The line under a result in a check report is the one hint table's
// (probe.Hint), after the check's own reason; the JSON form carries the
// hint alone.
func TestNoteIsTheHintAfterTheReason(t *testing.T) {
	for _, tc := range []struct {
		t    probe.Target
		r    probe.Result
		want string
	}{
		{probe.Target{Check: "tcp"}, probe.Result{Outcome: probe.OutcomeOK, Success: true}, ""},
		{probe.Target{Check: "udp"}, probe.Result{Outcome: probe.OutcomeOK, Success: true, Details: map[string]string{probe.DetailResponder: "true"}},
			"a flowprobe responder answered"},
		{probe.Target{Check: "ldap"}, probe.Result{Outcome: probe.OutcomeServiceTimeout, Connected: true},
			"the path is open: the service accepted the connection and then hung"},
		{probe.Target{Check: "icmp"}, probe.Result{Outcome: probe.OutcomeLocalError, Details: map[string]string{probe.DetailReason: probe.ReasonICMPPermission}},
			"no permission to open an ICMP socket — this machine may not send ICMP echoes: run as root or grant CAP_NET_RAW, or allow ping_group_range (sysctl net.ipv4.ping_group_range)"},
		{probe.Target{Check: "tcp", Expect: probe.ExpectDeny}, probe.Result{Outcome: probe.OutcomeOK, Connected: true},
			"this flow must be blocked, but a connection was made: the firewall lets it through"},
	} {
		if got := note(tc.t, tc.r); got != tc.want {
			t.Errorf("%s %v: note %q, want %q", tc.t.Check, tc.r.Outcome, got, tc.want)
		}
		if got, want := NewResult(tc.t, tc.r).Hint, probe.Hint(&tc.t, &tc.r); got != want {
			t.Errorf("%s %v: JSON hint %q, want %q", tc.t.Check, tc.r.Outcome, got, want)
		}
	}
}

// With a header, the Markdown and JUnit reports say where, when and from
// which config the run was made, and every JUnit test name is unique.
func TestCheckHeaderAndUniqueNames(t *testing.T) {
	cat, plan, results := fixture()
	plan.Skipped = append(plan.Skipped, plan.Skipped[0]) // the same skip twice
	rep := NewCheck(cat, plan, results, false)
	rep.Header = RunHeader{Host: "node-a", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Config: "site.yml"}
	var md, ju bytes.Buffer
	if err := rep.Write(&md, "markdown"); err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(&ju, "junit"); err != nil {
		t.Fatal(err)
	}
	if want := "## flowprobe check from node-a\n\n- Run at 2026-01-02T03:04:05Z\n- Config: site.yml\n\n"; !strings.HasPrefix(md.String(), want) {
		t.Errorf("markdown starts %q, want %q", md.String()[:min(len(md.String()), 80)], want)
	}
	for _, want := range []string{`hostname="node-a"`, `timestamp="2026-01-02T03:04:05"`, `<property name="config" value="site.yml"></property>`} {
		if !strings.Contains(ju.String(), want) {
			t.Errorf("junit lacks %s", want)
		}
	}
	var suites junitSuites
	if err := xml.Unmarshal(ju.Bytes(), &suites); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			if k := c.Classname + " " + c.Name; seen[k] {
				t.Errorf("test name %q twice", k)
			} else {
				seen[k] = true
			}
		}
	}
}

// With --trace every format carries the traces of the failed flows.
func TestCheckWithTracesGolden(t *testing.T) {
	cat, plan, results := fixture()
	rep := NewCheck(cat, plan, results, false)
	rep.SetTraces(map[string]Trace{
		"b": {Probe: "tcp/778", Destination: "192.0.2.42", Reached: true, Verdict: "SYN-ACK from the destination 192.0.2.42 at hop 2 but the check ended in protocol_error later: the path is open, the service hangs",
			Paths:        []TracePath{{Probe: "tcp/778", Method: "IP_RECVERR", Hops: []TraceHop{{TTL: 1, Address: "192.0.2.1", Reply: "time-exceeded"}, {TTL: 2, Address: "192.0.2.42", Reply: "syn-ack"}}}},
			BoundSeconds: 60, DurationSeconds: 0.01},
		"d": {Probe: "tcp/443", Destination: "2001:db8::1", BlockedHop: 3, LastHop: "2001:db8:0:2::1",
			Verdict:      "answered up to hop 2 (2001:db8:0:2::1); hop 3 silent for tcp/443: a filter at or after 2001:db8:0:2::1 drops it | `x`",
			Paths:        []TracePath{{Probe: "tcp/443", Method: "IPV6_RECVERR", Hops: []TraceHop{{TTL: 1, Address: "2001:db8:0:1::1", Reply: "time-exceeded"}, {TTL: 2, Address: "2001:db8:0:2::1", Reply: "time-exceeded"}, {TTL: 3, Reply: "silent"}}}},
			BoundSeconds: 60, DurationSeconds: 1.5},
	})
	for _, format := range []string{"text", "json", "markdown", "junit"} {
		var b bytes.Buffer
		if err := rep.Write(&b, format); err != nil {
			t.Fatal(err)
		}
		golden(t, "check-trace-"+format, b.Bytes())
	}
}
