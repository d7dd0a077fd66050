package checks

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// The verdict table: every TCP-based kind against hostile peers, with
// expect allow and deny. A peer that accepted the connection never gets a
// path outcome (timeout, refused), and never passes a deny flow. The same
// table is in docs/checks.md ("Verdicts against hostile peers").

// verdictPeer is how a hostile peer treats a connection.
type verdictPeer func(c net.Conn)

// peerSilent accepts and says nothing.
func peerSilent(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// peerTrickle answers every read with one byte and never finishes an
// answer. (The first byte goes out at once; the loop is bounded.)
// peerTrickleAfterRequest reads the client's request, then trickles.
func peerTrickleAfterRequest(c net.Conn) {
	if _, err := c.Read(make([]byte, 4096)); err != nil {
		return
	}
	peerTrickle(c)
}

func peerTrickle(c net.Conn) {
	buf := make([]byte, 4096)
	for range 64 {
		if _, err := c.Write([]byte{'S'}); err != nil {
			return
		}
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// peerReset reads the client's first bytes, then resets the connection.
func peerReset(c net.Conn) {
	_, _ = c.Read(make([]byte, 4096))
	_ = c.(*net.TCPConn).SetLinger(0)
	_ = c.Close()
}

// peerGarbage reads the client's first bytes, answers with bytes no
// protocol accepts and closes its side.
func peerGarbage(c net.Conn) {
	_, _ = c.Read(make([]byte, 4096))
	_, _ = c.Write([]byte("\x00\xff\xfe garbage \x01\x02\x03 garbage garbage garbage garbage garbage garbage garbage\r\n"))
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

type verdictKind struct {
	kind string
	opts map[string]any
	// clientFirst: the trickle begins after the client's request. For
	// http a byte before the request is an unsolicited response, which
	// net/http reports at once or not, as the two sides race.
	clientFirst bool
}

var verdictKinds = []verdictKind{
	{"tcp", map[string]any{"send": "PING\n", "expect": "^PONG"}, false},
	{"tls", nil, false},
	{"http", nil, true},
	{"ldap", nil, false},
	{"ssh", nil, false},
	{"iscsi", nil, false},
	{"dns", map[string]any{"name": "example.org", "transport": "tcp"}, false},
	{"banner", nil, false},
	{"smb", nil, false},
	{"rdp", nil, false},
	{"vnc", nil, false},
	{"rmi", nil, false},
	{"slp", map[string]any{"transport": "tcp"}, false},
	{"kerberos", map[string]any{"transport": "tcp"}, false},
	{"kpasswd", map[string]any{"transport": "tcp"}, false},
	{"rpc", map[string]any{"transport": "tcp"}, false},
}

// The request/reply kinds that also speak TCP: silent and trickling peers
// leave their framed reply unfinished; a reset is a reset; the garbage
// announces a reply longer than they read.
func init() {
	for _, kind := range []string{"slp", "kerberos", "kpasswd", "rpc"} {
		verdictWant["silent"][kind] = probe.OutcomeServiceTimeout
		verdictWant["trickle"][kind] = probe.OutcomeServiceTimeout
		verdictWant["reset"][kind] = probe.OutcomeProtocolError
		verdictWant["garbage"][kind] = probe.OutcomeProtocolError
	}
}

// verdictWant is the outcome of each kind against each peer, expect
// allow. With expect deny every one of them is a connection: outcome ok
// (the connect-only check) and a failed verdict.
// banner and vnc wait for the server to speak first; the reset and garbage
// peers wait for the client to speak first, so with them nobody speaks.
var verdictWant = map[string]map[string]probe.Outcome{
	"silent": {"tcp": probe.OutcomeServiceTimeout, "tls": probe.OutcomeServiceTimeout, "http": probe.OutcomeServiceTimeout,
		"ldap": probe.OutcomeServiceTimeout, "ssh": probe.OutcomeServiceTimeout, "iscsi": probe.OutcomeServiceTimeout, "dns": probe.OutcomeServiceTimeout,
		"banner": probe.OutcomeServiceTimeout, "smb": probe.OutcomeServiceTimeout, "rdp": probe.OutcomeServiceTimeout,
		"vnc": probe.OutcomeServiceTimeout, "rmi": probe.OutcomeServiceTimeout},
	"trickle": {"tcp": probe.OutcomeProtocolError, "tls": probe.OutcomeServiceTimeout, "http": probe.OutcomeServiceTimeout,
		"ldap": probe.OutcomeProtocolError, "ssh": probe.OutcomeServiceTimeout, "iscsi": probe.OutcomeServiceTimeout, "dns": probe.OutcomeServiceTimeout,
		"banner": probe.OutcomeServiceTimeout, "smb": probe.OutcomeServiceTimeout, "rdp": probe.OutcomeServiceTimeout,
		"vnc": probe.OutcomeServiceTimeout, "rmi": probe.OutcomeProtocolError},
	"reset": {"tcp": probe.OutcomeProtocolError, "tls": probe.OutcomeProtocolError, "http": probe.OutcomeProtocolError,
		"ldap": probe.OutcomeProtocolError, "ssh": probe.OutcomeProtocolError, "iscsi": probe.OutcomeProtocolError, "dns": probe.OutcomeProtocolError,
		"banner": probe.OutcomeServiceTimeout, "smb": probe.OutcomeProtocolError, "rdp": probe.OutcomeProtocolError,
		"vnc": probe.OutcomeServiceTimeout, "rmi": probe.OutcomeProtocolError},
	"garbage": {"tcp": probe.OutcomeProtocolError, "tls": probe.OutcomeProtocolError, "http": probe.OutcomeProtocolError,
		"ldap": probe.OutcomeProtocolError, "ssh": probe.OutcomeProtocolError, "iscsi": probe.OutcomeProtocolError, "dns": probe.OutcomeProtocolError,
		"banner": probe.OutcomeServiceTimeout, "smb": probe.OutcomeProtocolError, "rdp": probe.OutcomeProtocolError,
		"vnc": probe.OutcomeServiceTimeout, "rmi": probe.OutcomeProtocolError},
}

func TestVerdictTable(t *testing.T) {
	peers := map[string]verdictPeer{"silent": peerSilent, "trickle": peerTrickle, "reset": peerReset, "garbage": peerGarbage}
	for _, peerName := range []string{"silent", "trickle", "reset", "garbage"} {
		port := loopbackTCPPeer(t, peers[peerName])
		afterRequest := loopbackTCPPeer(t, peerTrickleAfterRequest)
		for _, k := range verdictKinds {
			port := port
			if peerName == "trickle" && k.clientFirst {
				port = afterRequest
			}
			for _, expect := range []probe.Expect{probe.ExpectAllow, probe.ExpectDeny} {
				t.Run(fmt.Sprintf("%s/%s/%s", k.kind, peerName, expect), func(t *testing.T) {
					t.Parallel()
					want := verdictWant[peerName][k.kind]
					if expect == probe.ExpectDeny {
						want = probe.OutcomeOK
					}
					r := verdictRun(t, k, port, expect, 300*time.Millisecond)
					if r.Outcome != want || r.Success || !r.Connected {
						t.Fatalf("outcome %s, success %v, connected %v (%v); want %s, failed, connected",
							r.Outcome, r.Success, r.Connected, r.Err, want)
					}
					if peerName == "reset" && want == probe.OutcomeProtocolError && r.Details[probe.DetailReason] != probe.ReasonResetAfterConnect {
						t.Errorf("reason %q, want %q", r.Details[probe.DetailReason], probe.ReasonResetAfterConnect)
					}
					if h := probe.Hint(&probe.Target{Check: k.kind, Expect: expect}, &r); h == "" {
						t.Error("no hint")
					}
				})
			}
		}
	}
}

func verdictRun(t *testing.T, k verdictKind, port int, expect probe.Expect, timeout time.Duration) probe.Result {
	t.Helper()
	opts, err := Decode(k.kind, k.opts)
	if err != nil {
		t.Fatal(err)
	}
	tg := probe.Target{Host: "127.0.0.1", Port: port, Check: k.kind, Options: opts, Expect: expect, Timeout: timeout}
	return Check(t.Context(), tg)
}

// A refusal before connect proves the block: deny passes, allow fails,
// for every kind.
func TestVerdictRefusedBeforeConnect(t *testing.T) {
	port := loopbackClosedTCPPort(t)
	for _, k := range verdictKinds {
		for _, expect := range []probe.Expect{probe.ExpectAllow, probe.ExpectDeny} {
			r := verdictRun(t, k, port, expect, 5*time.Second)
			if r.Outcome != probe.OutcomeRefused || r.Connected || r.Success != (expect == probe.ExpectDeny) {
				t.Errorf("%s, %s: outcome %s, connected %v, success %v (%v)", k.kind, expect, r.Outcome, r.Connected, r.Success, r.Err)
			}
		}
	}
}

// A deny flow never sends the check's payload, let alone credentials: the
// peer sees a connection and its end, nothing else.
func TestDenySendsNothing(t *testing.T) {
	got := make(chan int, 16)
	port := loopbackTCPPeer(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	})
	for _, k := range verdictKinds {
		r := verdictRun(t, k, port, probe.ExpectDeny, 5*time.Second)
		if r.Outcome != probe.OutcomeOK || r.Success {
			t.Errorf("%s: outcome %s, success %v; want ok and failed", k.kind, r.Outcome, r.Success)
		}
		if n := <-got; n != 0 {
			t.Errorf("%s: a deny flow sent %d bytes", k.kind, n)
		}
	}
}

// Faults of this machine are local_error and fail whatever the
// expectation. 192.0.2.1 is used only as a SOURCE address: binding to it
// fails locally, no packet is sent.
func TestVerdictLocalErrors(t *testing.T) {
	port := loopbackClosedTCPPort(t)
	cases := []struct {
		name, host, source string
		reason             string
	}{
		{"source address not on this machine", "127.0.0.1", "192.0.2.1", probe.ReasonSourceNotLocal},
		{"IPv4 source, IPv6 target", "::1", "127.0.0.1", probe.ReasonFamilyMismatch},
	}
	for _, tc := range cases {
		for _, k := range verdictKinds {
			for _, expect := range []probe.Expect{probe.ExpectAllow, probe.ExpectDeny} {
				opts, err := Decode(k.kind, k.opts)
				if err != nil {
					t.Fatal(err)
				}
				tg := probe.Target{Host: tc.host, Port: port, Check: k.kind, Options: opts, Expect: expect,
					Timeout: 5 * time.Second, SourceAddress: tc.source}
				r := Check(t.Context(), tg)
				if r.Outcome != probe.OutcomeLocalError || r.Success || r.Details[probe.DetailReason] != tc.reason {
					t.Errorf("%s, %s, %s: outcome %s, success %v, reason %q (%v); want local_error, %q",
						tc.name, k.kind, expect, r.Outcome, r.Success, r.Details[probe.DetailReason], r.Err, tc.reason)
				}
			}
		}
	}
}

// An unreadable secret at run time is local_error.
func TestVerdictSecretUnreadable(t *testing.T) {
	port := loopbackClosedTCPPort(t)
	o := &ISCSIOptions{CHAPUsername: "alice", CHAPSecretFile: t.TempDir() + "/missing"}
	r := Check(t.Context(), probe.Target{Host: "127.0.0.1", Port: port, Check: "iscsi", Options: o, Timeout: 5 * time.Second})
	if r.Outcome != probe.OutcomeLocalError || r.Details[probe.DetailReason] != probe.ReasonSecretUnreadable {
		t.Errorf("outcome %s, reason %q (%v); want local_error, %q", r.Outcome, r.Details[probe.DetailReason], r.Err, probe.ReasonSecretUnreadable)
	}
}

// An application-aware check that reaches a flowprobe responder says so,
// and the hint tells how to prove the path to it.
func TestVerdictResponderReached(t *testing.T) {
	resp, err := StartResponder(ResponderConfig{Address: "127.0.0.1", TCPPorts: []int{0}, ReadTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Close() })
	port := resp.Listening()[0].Port
	for _, k := range verdictKinds {
		if k.kind == "tcp" || k.kind == "dns" || k.kind == "banner" || k.kind == "vnc" {
			// tcp is the responder's own check; a DNS length prefix
			// cannot be told from the ERR line's first bytes; banner and
			// vnc wait for the server to speak first, which the
			// responder never does.
			continue
		}
		r := verdictRun(t, k, port, probe.ExpectAllow, 5*time.Second)
		if r.Outcome != probe.OutcomeProtocolError || r.Details[probe.DetailResponder] != "true" {
			t.Errorf("%s: outcome %s, details %v (%v); want protocol_error from a responder", k.kind, r.Outcome, r.Details, r.Err)
			continue
		}
		if h := probe.Hint(&probe.Target{Check: k.kind}, &r); !strings.Contains(h, "--responder") {
			t.Errorf("%s: hint %q does not name --responder", k.kind, h)
		}
	}
}

// A run cancelled from outside is interrupted, not an outcome.
func TestVerdictInterrupted(t *testing.T) {
	accepted := make(chan struct{}, 1)
	port := loopbackTCPPeer(t, func(c net.Conn) {
		accepted <- struct{}{}
		peerSilent(c)
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-accepted
		cancel()
	}()
	opts, _ := Decode("ssh", nil)
	r := Check(ctx, probe.Target{Host: "127.0.0.1", Port: port, Check: "ssh", Options: opts, Timeout: time.Hour})
	if !r.Interrupted || r.Success {
		t.Errorf("interrupted %v, success %v (%v); want an interrupted run", r.Interrupted, r.Success, r.Err)
	}
}
