//go:build lab

package checks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// transportWait bounds a check that should answer; transportDrop is the deadline of a
// check whose packets a DROP rule swallows.
const (
	transportWait = 3 * time.Second
	transportDrop = 500 * time.Millisecond
)

func labTransport(t *testing.T, kind string, port int, raw map[string]any, timeout time.Duration) probe.Result {
	t.Helper()
	opts, err := Decode(kind, raw)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := Lookup(kind)
	tg := probe.Target{Host: testlab.ServerAddr, Port: port, Protocol: k.Transport, Check: kind, Options: opts, Timeout: timeout}
	return probe.Run(context.Background(), k.Checker, tg)
}

func labTransportWant(t *testing.T, r probe.Result, want probe.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %s, want %s (err %v, details %v)", r.Outcome, want, r.Err, r.Details)
	}
}

func TestLabTCP(t *testing.T) {
	testlab.Require(t)
	cases := []struct {
		name    string
		port    int
		raw     map[string]any
		timeout time.Duration
		want    probe.Outcome
	}{
		{"ssh connect", testlab.SSHPort, nil, transportWait, probe.OutcomeOK},
		{"ssh banner", testlab.SSHPort, map[string]any{"expect": "^SSH-2.0-"}, transportWait, probe.OutcomeOK},
		{"ssh is no responder", testlab.SSHPort, map[string]any{"responder": true}, transportWait, probe.OutcomeProtocolError},
		{"closed port", testlab.ClosedTCPPort, nil, transportWait, probe.OutcomeRefused},
		{"silent peer", testlab.SilentTCPPort, map[string]any{"expect": "."}, transportDrop, probe.OutcomeServiceTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			labTransportWant(t, labTransport(t, "tcp", tc.port, tc.raw, tc.timeout), tc.want)
		})
	}
}

func TestLabTLS(t *testing.T) {
	testlab.Require(t)
	ca := map[string]any{"ca_file": testlab.File("ca.pem"), "server_name": testlab.ServerName}
	cases := []struct {
		name   string
		port   int
		want   probe.Outcome
		reason string
	}{
		{"valid", testlab.HTTPSPort, probe.OutcomeOK, ""},
		{"expired", testlab.HTTPSExpired, probe.OutcomeTLSError, "certificate expired"},
		{"wrong host", testlab.HTTPSWrongHost, probe.OutcomeTLSError, "certificate is not valid for host " + testlab.ServerName},
		{"self-signed", testlab.HTTPSSelfSign, probe.OutcomeTLSError, "self-signed certificate"},
		{"plain HTTP is not TLS", testlab.HTTPPort, probe.OutcomeProtocolError, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := labTransport(t, "tls", tc.port, ca, transportWait)
			labTransportWant(t, r, tc.want)
			if tc.reason != "" && r.Details[probe.DetailReason] != tc.reason {
				t.Errorf("reason %q, want %q", r.Details[probe.DetailReason], tc.reason)
			}
			if tc.want != probe.OutcomeProtocolError && r.Values[ValueTLSCertExpiry] == 0 {
				t.Errorf("no leaf expiry recorded: %v", r.Values)
			}
			if tc.want == probe.OutcomeOK && !strings.HasPrefix(r.Details[DetailTLSVersion], "TLS 1.") {
				t.Errorf("tls version %q", r.Details[DetailTLSVersion])
			}
		})
	}
}

func TestLabUDP(t *testing.T) {
	testlab.Require(t)
	labTransportWant(t, labTransport(t, "udp", testlab.EchoUDPPort, nil, transportWait), probe.OutcomeOK)
	labTransportWant(t, labTransport(t, "udp", testlab.EchoUDPPort, map[string]any{"send": "lab\n", "expect": "^lab"}, transportWait), probe.OutcomeOK)
	labTransportWant(t, labTransport(t, "udp", testlab.ClosedUDPPort, nil, transportWait), probe.OutcomeRefused)
}

// Each firewall action, as PROTOCOLS.md §0 measured it: DROP is silence,
// REJECT with a reset or port unreachable is refused, the other ICMP
// codes are unreachable for TCP. Connected UDP sees only the "hard" ICMP
// codes: host and net unreachable are ignored by the kernel, so the check
// hears nothing (no_response).
func TestLabFirewall(t *testing.T) {
	testlab.Require(t)
	cases := []struct {
		action  testlab.Action
		tcp     probe.Outcome
		udp     probe.Outcome
		skipUDP bool // tcp-reset applies to TCP only
	}{
		{testlab.Drop, probe.OutcomeTimeout, probe.OutcomeNoResponse, false},
		{testlab.RejectTCPReset, probe.OutcomeRefused, 0, true},
		{testlab.RejectPortUnreach, probe.OutcomeRefused, probe.OutcomeRefused, false},
		{testlab.RejectAdminProhib, probe.OutcomeUnreachable, probe.OutcomeUnreachable, false},
		{testlab.RejectHostUnreach, probe.OutcomeUnreachable, probe.OutcomeNoResponse, false},
		{testlab.RejectNetUnreach, probe.OutcomeUnreachable, probe.OutcomeNoResponse, false},
	}
	for _, tc := range cases {
		t.Run(string(tc.action)+"/tcp", func(t *testing.T) {
			testlab.Firewall(t, "tcp", testlab.SSHPort, tc.action)
			labTransportWant(t, labTransport(t, "tcp", testlab.SSHPort, nil, transportDrop), tc.tcp)
		})
		if tc.skipUDP {
			continue
		}
		t.Run(string(tc.action)+"/udp", func(t *testing.T) {
			testlab.Firewall(t, "udp", testlab.EchoUDPPort, tc.action)
			labTransportWant(t, labTransport(t, "udp", testlab.EchoUDPPort, nil, transportDrop), tc.udp)
		})
	}
}
