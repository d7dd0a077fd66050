//go:build lab

package checks

import (
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// netLabTarget is a target of kind on the lab server, with a short timeout:
// the lab is one veth hop away.
func netLabTarget(t *testing.T, kind, host string, port int, raw map[string]any) probe.Target {
	t.Helper()
	opts, err := Decode(kind, raw)
	if err != nil {
		t.Fatalf("Decode(%s, %v): %v", kind, raw, err)
	}
	return probe.Target{Host: host, Port: port, Check: kind, Options: opts, Timeout: 2 * time.Second}
}

func netLabWant(t *testing.T, r probe.Result, want probe.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome = %v (err %v, details %v), want %v", r.Outcome, r.Err, r.Details, want)
	}
}

func TestLabDNS(t *testing.T) {
	testlab.Require(t)
	tests := []struct {
		name    string
		raw     map[string]any
		outcome probe.Outcome
		answers string
		reason  string
	}{
		{"A", map[string]any{"name": testlab.DNSA, "answers": []any{testlab.ServerAddr}}, probe.OutcomeOK, testlab.ServerAddr, ""},
		{"AAAA", map[string]any{"name": testlab.DNSA, "type": "AAAA", "answers": []any{testlab.ServerAddr6}}, probe.OutcomeOK, testlab.ServerAddr6, ""},
		{"SRV", map[string]any{"name": testlab.DNSSRV, "type": "SRV", "answers": []any{"0 100 389 " + testlab.ServerName}}, probe.OutcomeOK, "0 100 389 lab.example.org.", ""},
		{"A over tcp", map[string]any{"name": testlab.DNSA, "transport": "tcp"}, probe.OutcomeOK, testlab.ServerAddr, ""},
		{"NXDOMAIN", map[string]any{"name": testlab.DNSMissing}, probe.OutcomeProtocolError, "", "rcode NXDOMAIN, expected NOERROR"},
		{"NXDOMAIN expected", map[string]any{"name": testlab.DNSMissing, "rcode": "NXDOMAIN"}, probe.OutcomeOK, "", ""},
		{"wrong answer", map[string]any{"name": testlab.DNSA, "answers": []any{"192.0.2.1"}}, probe.OutcomeProtocolError, testlab.ServerAddr, `no answer matches "192.0.2.1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(t.Context(), netLabTarget(t, "dns", testlab.ServerAddr, testlab.DNSPort, tc.raw))
			netLabWant(t, r, tc.outcome)
			if r.Details["answers"] != tc.answers {
				t.Errorf("answers = %q, want %q", r.Details["answers"], tc.answers)
			}
			if r.Details[probe.DetailReason] != tc.reason {
				t.Errorf("reason = %q, want %q", r.Details[probe.DetailReason], tc.reason)
			}
		})
	}
}

func TestLabNTP(t *testing.T) {
	testlab.Require(t)
	t.Run("synchronised", func(t *testing.T) {
		r := Check(t.Context(), netLabTarget(t, "ntp", testlab.ServerAddr, testlab.NTPPort, map[string]any{"max_offset": "1s"}))
		netLabWant(t, r, probe.OutcomeOK)
		if r.Details["ntp_status"] != "synchronised" || r.Values[ValueNTPStratum] != 8 || r.Values[ValueNTPLeap] != 0 {
			t.Errorf("details %v, values %v: want synchronised at stratum 8, leap 0", r.Details, r.Values)
		}
		for _, v := range []string{ValueNTPOffset, ValueNTPRTT, ValueNTPRootDistance} {
			if _, ok := r.Values[v]; !ok {
				t.Errorf("value %s missing", v)
			}
		}
		if rtt := r.Values[ValueNTPRTT]; rtt <= 0 {
			t.Errorf("rtt = %v, want > 0", rtt)
		}
	})
	t.Run("unsynchronised", func(t *testing.T) {
		r := Check(t.Context(), netLabTarget(t, "ntp", testlab.ServerAddr, testlab.NTPUnsyncPort, nil))
		netLabWant(t, r, probe.OutcomeProtocolError)
		if r.Details["ntp_status"] != "unsynchronised" || r.Details[probe.DetailReason] != "server unsynchronised" {
			t.Errorf("details %v: want unsynchronised", r.Details)
		}
		if _, ok := r.Values[ValueNTPOffset]; ok {
			t.Errorf("offset %v reported from an unsynchronised server", r.Values[ValueNTPOffset])
		}
		if r.Values[ValueNTPLeap] != 3 {
			t.Errorf("leap = %v, want 3", r.Values[ValueNTPLeap])
		}
	})
}

func TestLabICMP(t *testing.T) {
	testlab.Require(t)
	for _, host := range []string{testlab.ServerAddr, testlab.ServerAddr6} {
		t.Run(host, func(t *testing.T) {
			r := Check(t.Context(), netLabTarget(t, "icmp", host, 0, nil))
			netLabWant(t, r, probe.OutcomeOK)
			if r.Details["received"] != "3" || r.Values[ValueICMPLoss] != 0 || r.Values[ValueICMPRTT] <= 0 {
				t.Errorf("details %v, values %v: want 3 replies, no loss", r.Details, r.Values)
			}
		})
	}
}

// TestLabNetFirewall runs the dns, ntp and icmp checks through the lab's
// firewall: a DROP is silence (timeout, since these protocols always
// answer), a REJECT with port unreachable is refused, and one with
// admin-prohibited is unreachable.
func TestLabNetFirewall(t *testing.T) {
	testlab.Require(t)
	quick := map[string]map[string]any{
		"dns":  {"name": testlab.DNSA},
		"ntp":  nil,
		"icmp": {"count": 2, "reply_timeout": "300ms"},
	}
	tests := []struct {
		kind, proto string
		port        int
		action      testlab.Action
		outcome     probe.Outcome
	}{
		{"dns", "udp", testlab.DNSPort, testlab.Drop, probe.OutcomeTimeout},
		{"dns", "udp", testlab.DNSPort, testlab.RejectPortUnreach, probe.OutcomeRefused},
		{"dns", "udp", testlab.DNSPort, testlab.RejectAdminProhib, probe.OutcomeUnreachable},
		{"ntp", "udp", testlab.NTPPort, testlab.Drop, probe.OutcomeTimeout},
		{"ntp", "udp", testlab.NTPPort, testlab.RejectPortUnreach, probe.OutcomeRefused},
		{"ntp", "udp", testlab.NTPPort, testlab.RejectAdminProhib, probe.OutcomeUnreachable},
		{"icmp", "icmp", 0, testlab.Drop, probe.OutcomeTimeout},
		{"icmp", "icmp", 0, testlab.RejectAdminProhib, probe.OutcomeUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+string(tc.action), func(t *testing.T) {
			testlab.Firewall(t, tc.proto, tc.port, tc.action)
			tg := netLabTarget(t, tc.kind, testlab.ServerAddr, tc.port, quick[tc.kind])
			tg.Timeout = time.Second
			r := Check(t.Context(), tg)
			netLabWant(t, r, tc.outcome)
			if tc.kind == "icmp" && tc.action == testlab.RejectAdminProhib {
				if r.Details["icmp_type"] != "3" || r.Details["icmp_code"] != "13" || r.Details["icmp_from"] != testlab.ServerAddr {
					t.Errorf("details %v: want type 3 code 13 from %s", r.Details, testlab.ServerAddr)
				}
				if r.Details["sent"] != "1" {
					t.Errorf("sent = %s: want the check to stop at the first unreachable", r.Details["sent"])
				}
			}
			if tc.kind == "icmp" && tc.action == testlab.Drop {
				if r.Details["sent"] != "2" || r.Details["received"] != "0" || r.Values[ValueICMPLoss] != 1 {
					t.Errorf("details %v, values %v: want 2 echoes lost", r.Details, r.Values)
				}
			}
		})
	}
	t.Run("icmp6/admin-prohibited", func(t *testing.T) {
		testlab.Firewall(t, "icmp", 0, testlab.RejectAdminProhib)
		r := Check(t.Context(), netLabTarget(t, "icmp", testlab.ServerAddr6, 0, quick["icmp"]))
		netLabWant(t, r, probe.OutcomeUnreachable)
		if r.Details["icmp_type"] != "1" || r.Details["icmp_code"] != "1" ||
			!strings.Contains(r.Details[probe.DetailReason], "administratively prohibited") {
			t.Errorf("details %v: want ICMPv6 type 1 code 1", r.Details)
		}
	})
}
