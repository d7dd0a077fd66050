package probe

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOutcomeNamesRoundTrip(t *testing.T) {
	want := "ok timeout refused unreachable dns_error tls_error auth_error protocol_error no_response service_timeout local_error"
	var names []string
	for _, o := range Outcomes() {
		names = append(names, o.String())
		back, err := ParseOutcome(o.String())
		if err != nil || back != o {
			t.Errorf("ParseOutcome(%q) = %v, %v", o, back, err)
		}
		if o.Meaning() == "" {
			t.Errorf("%s has no meaning", o)
		}
		b, _ := json.Marshal(o)
		var u Outcome
		if err := json.Unmarshal(b, &u); err != nil || u != o {
			t.Errorf("JSON round trip of %s: %s → %v, %v", o, b, u, err)
		}
	}
	if got := strings.Join(names, " "); got != want {
		t.Errorf("outcomes %q, want %q (their order is the metric contract's)", got, want)
	}
	if _, err := ParseOutcome("blocked"); err == nil {
		t.Error("an unknown outcome parsed")
	}
}

// A flow that must pass passes only on ok. A flow that must be blocked
// passes only when the path was blocked before any connection: a drop, an
// ICMP unreachable, a refusal before connect, or UDP silence. Any
// connection is the violation, and local_error fails either way.
func TestExpectJudgesByCause(t *testing.T) {
	allowPass := map[Outcome]bool{OutcomeOK: true}
	denyPass := map[Outcome]bool{OutcomeTimeout: true, OutcomeUnreachable: true, OutcomeRefused: true, OutcomeNoResponse: true}
	for _, o := range Outcomes() {
		for _, connected := range []bool{false, true} {
			r := &Result{Outcome: o, Connected: connected}
			if got := ExpectAllow.Passes(r); got != allowPass[o] {
				t.Errorf("allow, %s, connected %v: passes=%v", o, connected, got)
			}
			if got := Expect("").Passes(r); got != allowPass[o] {
				t.Errorf("default expectation, %s, connected %v: passes=%v", o, connected, got)
			}
			if got, want := ExpectDeny.Passes(r), denyPass[o] && !connected; got != want {
				t.Errorf("deny, %s, connected %v: passes=%v, want %v", o, connected, got, want)
			}
		}
	}
}

func TestPortSpecs(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		check   bool
		err     string
	}{
		{"389", "389", true, ""},
		{" 6910-6930 ", "6910-6930", true, ""},
		{"10001-65535", "10001-65535", true, ""},
		{"dynamic", "dynamic", false, ""},
		{"ephemeral", "ephemeral", false, ""},
		{"0", "", false, "outside 1..65535"},
		{"65536", "", false, "outside 1..65535"},
		{"30-20", "", false, "reversed"},
		{"http", "", false, "not a number"},
	} {
		p, err := ParsePortSpec(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p.String() != tc.out || p.Checkable() != tc.check {
			t.Errorf("%q: %v (checkable %v), %v", tc.in, p, p.Checkable(), err)
		}
	}
}

func TestTargetIDsAndAddresses(t *testing.T) {
	tg := Target{Host: "2001:db8::1", Port: 636}
	if tg.Address() != "[2001:db8::1]:636" {
		t.Errorf("address %q", tg.Address())
	}
	if id := MakeID("p", "f", "2001:db8::1", 636, TCP, "ldap"); id != "p/f/[2001:db8::1]:636/tcp/ldap" {
		t.Errorf("id %q", id)
	}
	icmp := Target{Host: "192.0.2.1"}
	if icmp.Address() != "192.0.2.1" || MakeID("p", "lkping", "192.0.2.1", 0, ICMP, "icmp") != "p/lkping/192.0.2.1/icmp/icmp" {
		t.Errorf("icmp address %q", icmp.Address())
	}
}

func TestRunJudgesAndTimes(t *testing.T) {
	var deadline bool
	c := CheckerFunc(func(ctx context.Context, t Target) Result {
		_, deadline = ctx.Deadline()
		<-ctx.Done()
		return Result{Outcome: OutcomeTimeout, Err: ctx.Err(), Phases: [NumPhases]time.Duration{PhaseConnect: time.Millisecond}}
	})
	r := Run(context.Background(), c, Target{Timeout: time.Millisecond, Expect: ExpectDeny})
	if !deadline || r.Outcome != OutcomeTimeout || !r.Success || r.Start.IsZero() || r.Duration <= 0 {
		t.Errorf("result %+v (deadline set: %v)", r, deadline)
	}
	if !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the deadline", r.Err)
	}
}
