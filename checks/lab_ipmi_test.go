//go:build lab

package checks

import (
	"context"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// ipmiRun runs the ipmi check in mode from the simulator's client namespace.
func ipmiRun(t *testing.T, sim *testlab.IPMISim, mode string, expect probe.Expect, timeout time.Duration) probe.Result {
	t.Helper()
	opts, err := Decode("ipmi", map[string]any{"mode": mode})
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	tg := probe.Target{Host: testlab.IPMIAddr, Port: testlab.IPMIPort, Protocol: probe.UDP, Check: "ipmi",
		Options: opts, Timeout: timeout, Expect: expect}
	var r probe.Result
	sim.Do(t, func() { r = Check(context.Background(), tg) })
	return r
}

// TestIPMI proves both modes of the ipmi check against OpenIPMI's BMC
// simulator of the test's own: directly, behind DROP and REJECT rules in
// the BMC's namespace, and as deny flows.
func TestIPMI(t *testing.T) {
	sim := testlab.NewIPMISim(t)
	const answer, dropped = 5 * time.Second, time.Second
	modes := []struct{ mode, detail string }{
		{ipmiCapabilities, "ipmi_v2"},
		{ipmiPing, "ipmi_supported"},
	}

	t.Run("direct", func(t *testing.T) {
		for _, m := range modes {
			t.Run(m.mode, func(t *testing.T) {
				r := ipmiRun(t, sim, m.mode, probe.ExpectAllow, answer)
				if r.Outcome != probe.OutcomeOK || !r.Success {
					t.Fatalf("outcome %s (%v), want ok; details %v", r.Outcome, r.Err, r.Details)
				}
				// ipmi_sim speaks IPMI 2.0 and says so in both replies.
				if r.Details[m.detail] != "true" {
					t.Errorf("%s = %q, want true; details %v", m.detail, r.Details[m.detail], r.Details)
				}
			})
		}
	})

	t.Run("firewall", func(t *testing.T) {
		for _, m := range modes {
			for _, fw := range []struct {
				action testlab.Action
				want   probe.Outcome
			}{
				{testlab.Drop, probe.OutcomeNoResponse},
				{testlab.RejectPortUnreach, probe.OutcomeRefused},
				{testlab.RejectAdminProhib, probe.OutcomeUnreachable},
			} {
				t.Run(m.mode+"/"+string(fw.action), func(t *testing.T) {
					sim.Block(t, "udp", testlab.IPMIPort, fw.action)
					r := ipmiRun(t, sim, m.mode, probe.ExpectAllow, dropped)
					if r.Outcome != fw.want || r.Success {
						t.Errorf("allow: outcome %s (%v) success %v, want %s failing; details %v", r.Outcome, r.Err, r.Success, fw.want, r.Details)
					}
					r = ipmiRun(t, sim, m.mode, probe.ExpectDeny, dropped)
					if r.Outcome != fw.want || !r.Success {
						t.Errorf("deny: outcome %s (%v) success %v, want %s passing; details %v", r.Outcome, r.Err, r.Success, fw.want, r.Details)
					}
				})
			}
		}
	})

	t.Run("deny flow on an open path", func(t *testing.T) {
		for _, m := range modes {
			t.Run(m.mode, func(t *testing.T) {
				if r := ipmiRun(t, sim, m.mode, probe.ExpectDeny, answer); r.Success {
					t.Fatalf("deny flow passed on an open path: outcome %s, details %v", r.Outcome, r.Details)
				}
			})
		}
	})
}
