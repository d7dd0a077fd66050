package trace

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

func loopbackReq(proto probe.Protocol, port int) Request {
	return Request{Protocol: proto, Destination: netip.MustParseAddr("127.0.0.1"), Port: port,
		MaxHops: 4, HopTimeout: 2 * time.Second, Tries: 1}
}

// closedPort returns a loopback port nothing listens on (for proto).
func closedPort(t *testing.T, network string) int {
	t.Helper()
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		return port
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

func TestTraceLoopbackTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tr := &Tracer{}
	rep, err := tr.Run(context.Background(), loopbackReq(probe.TCP, l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reached || len(rep.Flow.Hops) != 1 || rep.Flow.Hops[0].Reply != ReplySynAck {
		t.Fatalf("open port: got %+v", rep)
	}
	if !strings.Contains(rep.Verdict, "the path is open") {
		t.Errorf("verdict %q", rep.Verdict)
	}

	rep, err = tr.Run(context.Background(), loopbackReq(probe.TCP, closedPort(t, "tcp")))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reached || rep.Flow.Hops[0].Reply != ReplyReset || !strings.Contains(rep.Verdict, "RST from the destination 127.0.0.1 at hop 1") {
		t.Fatalf("closed port: got %+v", rep)
	}
}

func TestTraceLoopbackTCPHung(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	req := loopbackReq(probe.TCP, l.Addr().(*net.TCPAddr).Port)
	req.AfterConnect = "service_timeout"
	rep, err := (&Tracer{}).Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if want := "the path is open, the service hangs"; !strings.Contains(rep.Verdict, want) {
		t.Errorf("verdict %q, want %q", rep.Verdict, want)
	}
}

func TestTraceLoopbackUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		n, from, err := pc.ReadFrom(buf)
		if err == nil {
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	req := loopbackReq(probe.UDP, pc.LocalAddr().(*net.UDPAddr).Port)
	req.Payload = []byte("hello")
	tr := &Tracer{}
	rep, err := tr.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reached || rep.Flow.Hops[0].Reply != ReplyUDP {
		t.Fatalf("echoing port: got %+v", rep)
	}

	rep, err = tr.Run(context.Background(), loopbackReq(probe.UDP, closedPort(t, "udp")))
	if err != nil {
		t.Fatal(err)
	}
	h := rep.Flow.Hops[0]
	if !rep.Reached || h.Reply != ReplyUnreachable || h.Code != "port-unreachable" || h.Addr != req.Destination {
		t.Fatalf("closed port: got %+v", rep)
	}
	if !strings.Contains(rep.Verdict, "answers port-unreachable") {
		t.Errorf("verdict %q", rep.Verdict)
	}
}

func TestTraceLoopbackIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer l.Close()
	req := loopbackReq(probe.TCP, l.Addr().(*net.TCPAddr).Port)
	req.Destination = netip.IPv6Loopback()
	req.Source = netip.IPv6Loopback()
	rep, err := (&Tracer{}).Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reached || rep.Flow.Hops[0].Reply != ReplySynAck || rep.Flow.Hops[0].Addr != req.Destination {
		t.Fatalf("got %+v", rep)
	}
}

func TestTraceLoopbackEcho(t *testing.T) {
	req := loopbackReq(probe.ICMP, 0)
	rep, err := (&Tracer{}).Run(context.Background(), req)
	if errors.Is(err, ErrPermission) {
		t.Skipf("no raw socket here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reached || rep.Flow.Hops[0].Reply != ReplyEchoReply || rep.Flow.Method != methodRaw {
		t.Fatalf("got %+v", rep)
	}
}

func TestTraceNoRawSaysTheRemedy(t *testing.T) {
	_, err := (&Tracer{NoRaw: true}).Run(context.Background(), loopbackReq(probe.ICMP, 0))
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_RAW") {
		t.Fatalf("got %v, want the permission error with its remedy", err)
	}
}

func TestTraceRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Protocol: probe.TCP, Port: 1}, "no destination"},
		{Request{Protocol: probe.TCP, Destination: netip.MustParseAddr("127.0.0.1")}, "port 0"},
		{Request{Protocol: probe.ICMP, Destination: netip.MustParseAddr("127.0.0.1"), MaxHops: 65}, "max hops 65"},
		{Request{Protocol: probe.ICMP, Destination: netip.MustParseAddr("127.0.0.1"), Tries: 3}, "tries 3"},
		{Request{Protocol: probe.ICMP, Destination: netip.MustParseAddr("127.0.0.1"), Source: netip.IPv6Loopback()}, "different families"},
		{Request{Protocol: "sctp", Destination: netip.MustParseAddr("127.0.0.1")}, "protocol"},
	} {
		_, err := (&Tracer{}).Run(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.req, err, tc.want)
		}
	}
}

// fakeProber answers every probe with the hop its function returns and
// counts the probes.
type fakeProber struct {
	answer func(ttl int) Hop
	sent   int
}

func (f *fakeProber) probe(_ context.Context, ttl, _ int) (Hop, error) {
	f.sent++
	return f.answer(ttl), nil
}
func (f *fakeProber) method() string { return "fake" }
func (f *fakeProber) close()         {}

func TestTraceProbesAreBounded(t *testing.T) {
	req := Request{Protocol: probe.TCP, Destination: netip.MustParseAddr("192.0.2.7"), Port: 389, MaxHops: 30, Tries: 2}
	tr := &Tracer{Gap: time.Nanosecond}
	for _, tc := range []struct {
		name   string
		answer func(int) Hop
		want   int
	}{
		{"silent from hop 1: SilentRun hops, Tries each", func(int) Hop { return Hop{Reply: ReplySilent} }, SilentRun * 2},
		{"routers forever: one probe per hop up to MaxHops", func(int) Hop { return Hop{Reply: ReplyTimeExceeded} }, 30},
		{"destination at hop 3", func(ttl int) Hop {
			if ttl == 3 {
				return Hop{Reply: ReplySynAck, Addr: req.Destination}
			}
			return Hop{Reply: ReplyTimeExceeded}
		}, 3},
	} {
		f := &fakeProber{answer: tc.answer}
		if _, err := tr.walk(context.Background(), req, f, "tcp/389"); err != nil {
			t.Fatal(err)
		}
		if f.sent != tc.want {
			t.Errorf("%s: %d probes, want %d", tc.name, f.sent, tc.want)
		}
	}
}
