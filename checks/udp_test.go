package checks

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// loopbackUDPPeer answers every datagram with reply(request); a nil answer
// sends nothing. It stops when the test ends.
func loopbackUDPPeer(t testing.TB, reply func(req []byte) []byte) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := reply(buf[:n]); out != nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	})
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func checkUDPAt(t testing.TB, port int, raw map[string]any, timeout time.Duration) probe.Result {
	t.Helper()
	var opts any
	if raw != nil {
		o, err := Decode("udp", raw)
		if err != nil {
			t.Fatal(err)
		}
		opts = o
	}
	return probe.Run(context.Background(), udpKind.Checker, probe.Target{Host: "127.0.0.1", Port: port, Protocol: probe.UDP, Timeout: timeout, Options: opts})
}

func TestUDPCheck(t *testing.T) {
	_, respPort := startTestResponder(t, ResponderConfig{Name: "ntp01.example.org"})
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return bytes.Clone(req) })
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	version := loopbackUDPPeer(t, func([]byte) []byte { return []byte("svc 2.4\n") })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return bytes.Repeat([]byte("y"), 60000) })
	forged := loopbackUDPPeer(t, func([]byte) []byte {
		return []byte("FLOWPROBE/1 ACK 00000000000000000000000000000000 impostor udp/1 127.0.0.1:1\n")
	})

	short := 100 * time.Millisecond
	long := 10 * time.Second
	cases := []struct {
		name      string
		port      int
		opts      map[string]any
		timeout   time.Duration
		want      probe.Outcome
		msg       string
		responder bool
	}{
		{name: "flowprobe responder", port: respPort, timeout: long, want: probe.OutcomeOK, responder: true},
		{name: "responder required and present", port: respPort, opts: map[string]any{"responder": true}, timeout: long, want: probe.OutcomeOK, responder: true},
		{name: "echo service answers", port: echo, timeout: long, want: probe.OutcomeOK},
		{name: "closed port (ICMP port unreachable)", port: loopbackClosedUDPPort(t), timeout: long, want: probe.OutcomeRefused},
		{name: "silence until the deadline", port: silent, timeout: short, want: probe.OutcomeNoResponse, msg: "open or filtered"},
		{name: "expect matches", port: version, opts: map[string]any{"send": "version\n", "expect": `^svc \d`}, timeout: long, want: probe.OutcomeOK},
		{name: "expect does not match", port: version, opts: map[string]any{"send": "version\n", "expect": `^other`}, timeout: long, want: probe.OutcomeProtocolError, msg: "does not match"},
		{name: "responder required, echo answered", port: echo, opts: map[string]any{"responder": true}, timeout: long, want: probe.OutcomeProtocolError, msg: "reached something other than the flowprobe responder"},
		{name: "responder required, ACK for another nonce", port: forged, opts: map[string]any{"responder": true}, timeout: long, want: probe.OutcomeProtocolError, msg: "reached something other than the flowprobe responder"},
		{name: "huge answer is read in bounds", port: huge, timeout: long, want: probe.OutcomeOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := checkUDPAt(t, tc.port, tc.opts, tc.timeout)
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s (err %v)", r.Outcome, tc.want, r.Err)
			}
			if !strings.Contains(r.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", r.Error(), tc.msg)
			}
			if got := r.Details[probe.DetailResponder] == "true"; got != tc.responder {
				t.Errorf("responder detail %v, want %v (details %v)", got, tc.responder, r.Details)
			}
			if tc.want == probe.OutcomeNoResponse && r.Details[probe.DetailReason] != "open or filtered" {
				t.Errorf("reason %q", r.Details[probe.DetailReason])
			}
			if tc.responder && r.Details[DetailResponderName] != "ntp01.example.org" {
				t.Errorf("responder name %q", r.Details[DetailResponderName])
			}
		})
	}
}

func TestUDPCheckSendsPayload(t *testing.T) {
	got := make(chan string, 1)
	port := loopbackUDPPeer(t, func(req []byte) []byte {
		got <- string(req)
		return []byte("ok")
	})
	r := checkUDPAt(t, port, map[string]any{"send": "\x17\x00\x02\x00"}, 10*time.Second)
	if r.Outcome != probe.OutcomeOK {
		t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
	}
	if p := <-got; p != "\x17\x00\x02\x00" {
		t.Errorf("peer got %q", p)
	}
}

func TestUDPCheckDefaultPayloadIsPaddedHello(t *testing.T) {
	got := make(chan []byte, 1)
	port := loopbackUDPPeer(t, func(req []byte) []byte {
		got <- bytes.Clone(req)
		return nil
	})
	r := checkUDPAt(t, port, nil, 100*time.Millisecond)
	if r.Outcome != probe.OutcomeNoResponse {
		t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
	}
	p := <-got
	if _, ok := parseHello(p); !ok || len(p) != udpHelloSize {
		t.Errorf("payload %q (%d bytes) is not a padded hello", p, len(p))
	}
}

// Silence ends at the context's deadline as no_response, never as
// timeout, and the check returns (the overshoot is measured in
// BenchmarkUDPCheckDeadlineOvershoot).
func TestUDPCheckObeysContext(t *testing.T) {
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	r := udpKind.Checker.Check(ctx, probe.Target{Host: "127.0.0.1", Port: silent})
	if r.Outcome != probe.OutcomeNoResponse {
		t.Errorf("outcome %s, want no_response (%v)", r.Outcome, r.Err)
	}
}

func TestUDPOptionsDecode(t *testing.T) {
	for raw, msg := range map[string]map[string]any{
		"expect":                        {"expect": "["},
		"cannot go with send or expect": {"responder": true, "expect": "x"},
		"payload":                       {"payload": "x"},
	} {
		if _, err := Decode("udp", msg); err == nil || !strings.Contains(err.Error(), raw) {
			t.Errorf("Decode(%v) = %v, want an error naming %q", msg, err, raw)
		}
	}
}

func BenchmarkUDPCheckResponder(b *testing.B) {
	_, port := startTestResponder(b, ResponderConfig{})
	tg := probe.Target{Host: "127.0.0.1", Port: port, Timeout: 5 * time.Second}
	c := udpKind.Checker
	b.ReportAllocs()
	for b.Loop() {
		if r := probe.Run(context.Background(), c, tg); r.Outcome != probe.OutcomeOK {
			b.Fatalf("outcome %s: %v", r.Outcome, r.Err)
		}
	}
}

func BenchmarkUDPCheckDeadlineOvershoot(b *testing.B) {
	port := loopbackUDPPeer(b, func([]byte) []byte { return nil })
	tg := probe.Target{Host: "127.0.0.1", Port: port}
	const budget = 5 * time.Millisecond
	var over time.Duration
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		start := time.Now()
		r := udpKind.Checker.Check(ctx, tg)
		over += time.Since(start) - budget
		cancel()
		if r.Outcome != probe.OutcomeNoResponse {
			b.Fatalf("outcome %s: %v", r.Outcome, r.Err)
		}
	}
	b.ReportMetric(float64(over.Microseconds())/1000/float64(b.N), "overshoot-ms")
}
