package checks

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

func decodeTCP(t testing.TB, raw map[string]any) *TCPOptions {
	t.Helper()
	o, err := Decode("tcp", raw)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*TCPOptions)
}

// startTestResponder runs a Responder on one loopback TCP and one UDP port.
func startTestResponder(t testing.TB, cfg ResponderConfig) (tcpPort, udpPort int) {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1"
	}
	if cfg.TCPPorts == nil && cfg.UDPPorts == nil {
		cfg.TCPPorts, cfg.UDPPorts = []int{0}, []int{0}
	}
	if cfg.Name == "" {
		cfg.Name = "test-responder"
	}
	r, err := StartResponder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for _, p := range r.Listening() {
		switch p.Protocol {
		case probe.TCP:
			tcpPort = p.Port
		case probe.UDP:
			udpPort = p.Port
		}
	}
	return tcpPort, udpPort
}

func checkTCPAt(t testing.TB, port int, opts *TCPOptions, timeout time.Duration) probe.Result {
	t.Helper()
	var o any
	if opts != nil {
		o = opts
	}
	return probe.Run(context.Background(), tcpKind.Checker, probe.Target{Host: "127.0.0.1", Port: port, Timeout: timeout, Options: o})
}

func TestTCPCheck(t *testing.T) {
	respPort, _ := startTestResponder(t, ResponderConfig{})
	accept := loopbackTCPPeer(t, func(net.Conn) {})
	silent := loopbackTCPPeer(t, silentServe)
	smtp := loopbackTCPPeer(t, func(c net.Conn) {
		_, _ = c.Write([]byte("220 mail.example.org ESMTP ready\r\n"))
		silentServe(c)
	})
	pingPong := loopbackTCPPeer(t, func(c net.Conn) {
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err == nil && string(b[:]) == "PING" {
			_, _ = c.Write([]byte("PO"))
			_, _ = c.Write([]byte("NG\r\n")) // in two pieces: the check must keep reading
		}
		silentServe(c)
	})
	hangUp := loopbackTCPPeer(t, func(c net.Conn) {
		_ = c.(*net.TCPConn).CloseWrite()
		silentServe(c)
	})
	flood := loopbackTCPPeer(t, func(c net.Conn) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 16 { // 1 MiB at most; the check stops reading at 4 KiB
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	reset := loopbackTCPPeer(t, func(c net.Conn) {
		_ = c.(*net.TCPConn).SetLinger(0) // close with RST
	})
	mumble := loopbackTCPPeer(t, func(c net.Conn) {
		_, _ = c.Write([]byte("hello?"))
		silentServe(c)
	})

	short := 100 * time.Millisecond
	long := 10 * time.Second
	cases := []struct {
		name    string
		port    int
		opts    map[string]any
		timeout time.Duration
		want    probe.Outcome
		msg     string // in the error
		banner  string
		request bool // the request phase ran
	}{
		{name: "connect only", port: accept, timeout: long, want: probe.OutcomeOK},
		{name: "closed port", port: loopbackClosedTCPPort(t), timeout: long, want: probe.OutcomeRefused},
		{name: "connect only to a silent peer is ok", port: silent, timeout: long, want: probe.OutcomeOK},
		{name: "expect a banner", port: smtp, opts: map[string]any{"expect": "^220 "}, timeout: long, want: probe.OutcomeOK, banner: "220 mail.example.org ESMTP ready", request: true},
		{name: "send and expect", port: pingPong, opts: map[string]any{"send": "PING", "expect": "PONG\r\n"}, timeout: long, want: probe.OutcomeOK, banner: "PONG", request: true},
		{name: "banner does not match", port: smtp, opts: map[string]any{"expect": "^SSH-2.0-"}, timeout: short, want: probe.OutcomeProtocolError, msg: "no match", banner: "220 mail.example.org ESMTP ready"},
		{name: "expect from a silent peer", port: silent, opts: map[string]any{"expect": "^220 "}, timeout: short, want: probe.OutcomeServiceTimeout},
		{name: "peer hangs up without a word", port: hangUp, opts: map[string]any{"expect": "^220 "}, timeout: long, want: probe.OutcomeProtocolError, msg: "without a word"},
		{name: "flood without a match stops at 4 KiB", port: flood, opts: map[string]any{"expect": "never"}, timeout: long, want: probe.OutcomeProtocolError, msg: "first 4096 bytes"},
		{name: "reset after accept", port: reset, opts: map[string]any{"expect": "x"}, timeout: long, want: probe.OutcomeProtocolError, msg: "connection reset"},
		{name: "responder", port: respPort, opts: map[string]any{"responder": true}, timeout: long, want: probe.OutcomeOK, request: true},
		{name: "responder wanted, SMTP answered", port: smtp, opts: map[string]any{"responder": true}, timeout: long, want: probe.OutcomeProtocolError, msg: "reached something other than the flowprobe responder"},
		{name: "responder wanted, peer hangs up", port: hangUp, opts: map[string]any{"responder": true}, timeout: long, want: probe.OutcomeProtocolError, msg: "reached something other than the flowprobe responder"},
		{name: "responder wanted, partial line then silence", port: mumble, opts: map[string]any{"responder": true}, timeout: short, want: probe.OutcomeProtocolError, msg: "reached something other than the flowprobe responder"},
		{name: "responder wanted, silent peer", port: silent, opts: map[string]any{"responder": true}, timeout: short, want: probe.OutcomeServiceTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts *TCPOptions
			if tc.opts != nil {
				opts = decodeTCP(t, tc.opts)
			}
			r := checkTCPAt(t, tc.port, opts, tc.timeout)
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s (err %v)", r.Outcome, tc.want, r.Err)
			}
			if !strings.Contains(r.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", r.Error(), tc.msg)
			}
			if tc.banner != "" && r.Details[DetailBanner] != tc.banner {
				t.Errorf("banner %q, want %q", r.Details[DetailBanner], tc.banner)
			}
			if tc.want == probe.OutcomeOK && r.Phases[probe.PhaseConnect] <= 0 {
				t.Error("connect phase not timed")
			}
			if got := r.Phases[probe.PhaseRequest] > 0; got != tc.request && tc.want == probe.OutcomeOK {
				t.Errorf("request phase ran: %v, want %v", got, tc.request)
			}
		})
	}
}

func TestTCPCheckResponderDetails(t *testing.T) {
	port, _ := startTestResponder(t, ResponderConfig{Name: "db01.example.org"})
	r := checkTCPAt(t, port, decodeTCP(t, map[string]any{"responder": true}), 10*time.Second)
	if r.Outcome != probe.OutcomeOK {
		t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
	}
	if r.Details[probe.DetailResponder] != "true" || r.Details[DetailResponderName] != "db01.example.org" {
		t.Errorf("details %v", r.Details)
	}
	if !strings.HasPrefix(r.Details[DetailResponderSeenAs], "127.0.0.1:") {
		t.Errorf("seen as %q", r.Details[DetailResponderSeenAs])
	}
}

func TestTCPCheckSanitizesBanner(t *testing.T) {
	port := loopbackTCPPeer(t, func(c net.Conn) {
		_, _ = c.Write([]byte("220 \x1b[2Jhi\xff\r\nmore"))
	})
	r := checkTCPAt(t, port, decodeTCP(t, map[string]any{"expect": "^220"}), 10*time.Second)
	if r.Outcome != probe.OutcomeOK {
		t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
	}
	if got := r.Details[DetailBanner]; got != "220 ?[2Jhi?" {
		t.Errorf("banner %q", got)
	}
}

// A check must return once its context ends, even against a peer that
// accepts and never answers; how long after the deadline it returns is
// measured by BenchmarkTCPCheckDeadlineOvershoot, not asserted here.
func TestTCPCheckObeysContext(t *testing.T) {
	silent := loopbackTCPPeer(t, silentServe)
	for _, opts := range []map[string]any{{"responder": true}, {"expect": "x"}, {"send": "PING\n", "expect": "PONG"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		r := tcpKind.Checker.Check(ctx, probe.Target{Host: "127.0.0.1", Port: silent, Options: decodeTCP(t, opts)})
		cancel()
		if r.Outcome != probe.OutcomeServiceTimeout {
			t.Errorf("%v: outcome %s, want service_timeout (%v)", opts, r.Outcome, r.Err)
		}
	}
	// A context that is already over never connects.
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	if r := tcpKind.Checker.Check(ctx, probe.Target{Host: "127.0.0.1", Port: silent}); r.Outcome != probe.OutcomeTimeout {
		t.Errorf("expired context: outcome %s, want timeout (%v)", r.Outcome, r.Err)
	}
}

// Cancelling (not a deadline) also ends a blocked read: the watcher moves
// the conn's deadline into the past.
func TestTCPCheckObeysCancel(t *testing.T) {
	accepted := make(chan struct{}, 1)
	silent := loopbackTCPPeer(t, func(c net.Conn) {
		accepted <- struct{}{}
		silentServe(c)
	})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-accepted
		cancel()
	}()
	r := tcpKind.Checker.Check(ctx, probe.Target{Host: "127.0.0.1", Port: silent, Options: decodeTCP(t, map[string]any{"expect": "x"})})
	// The cancel may land before the dial returned (timeout) or during
	// the read (service_timeout); either way the check returned.
	if r.Outcome != probe.OutcomeServiceTimeout && r.Outcome != probe.OutcomeTimeout {
		t.Errorf("outcome %s, want service_timeout or timeout (%v)", r.Outcome, r.Err)
	}
}

func TestTCPOptionsDecode(t *testing.T) {
	cases := []struct {
		raw map[string]any
		msg string
	}{
		{map[string]any{"expect": "("}, "expect"},
		{map[string]any{"responder": true, "send": "x"}, "cannot go with send or expect"},
		{map[string]any{"banner": "x"}, "banner"},
	}
	for _, tc := range cases {
		if _, err := Decode("tcp", tc.raw); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Decode(%v) = %v, want an error naming %q", tc.raw, err, tc.msg)
		}
	}
	o := decodeTCP(t, map[string]any{"send": "QUIT\r\n", "expect": "^221"})
	if o.Send != "QUIT\r\n" || o.expect == nil {
		t.Errorf("decoded %+v", o)
	}
}

// BenchmarkTCPCheck is the cost of one connect-only tcp check against a
// loopback listener, through probe.Run as the scheduler calls it.
func BenchmarkTCPCheck(b *testing.B) {
	port := loopbackTCPPeer(b, func(net.Conn) {})
	tg := probe.Target{Host: "127.0.0.1", Port: port, Timeout: 5 * time.Second}
	c := tcpKind.Checker
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := probe.Run(ctx, c, tg); r.Outcome != probe.OutcomeOK {
			b.Fatalf("outcome %s: %v", r.Outcome, r.Err)
		}
	}
}

// BenchmarkTCPCheckResponder adds the token exchange with a Responder.
func BenchmarkTCPCheckResponder(b *testing.B) {
	port, _ := startTestResponder(b, ResponderConfig{})
	tg := probe.Target{Host: "127.0.0.1", Port: port, Timeout: 5 * time.Second, Options: decodeTCP(b, map[string]any{"responder": true})}
	c := tcpKind.Checker
	b.ReportAllocs()
	for b.Loop() {
		if r := probe.Run(context.Background(), c, tg); r.Outcome != probe.OutcomeOK {
			b.Fatalf("outcome %s: %v", r.Outcome, r.Err)
		}
	}
}

// BenchmarkTCPCheckDeadlineOvershoot reports how long past its deadline a
// check against an accept-and-silent peer returns (overshoot-ms).
func BenchmarkTCPCheckDeadlineOvershoot(b *testing.B) {
	port := loopbackTCPPeer(b, silentServe)
	tg := probe.Target{Host: "127.0.0.1", Port: port, Options: decodeTCP(b, map[string]any{"expect": "x"})}
	const budget = 5 * time.Millisecond
	var over time.Duration
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		start := time.Now()
		r := tcpKind.Checker.Check(ctx, tg)
		over += time.Since(start) - budget
		cancel()
		if r.Outcome != probe.OutcomeServiceTimeout {
			b.Fatalf("outcome %s: %v", r.Outcome, r.Err)
		}
	}
	b.ReportMetric(float64(over.Microseconds())/1000/float64(b.N), "overshoot-ms")
}
