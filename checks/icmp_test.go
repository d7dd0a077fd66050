package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/flowprobe/flowprobe/probe"
)

func icmpTarget(t testing.TB, host string, raw map[string]any) probe.Target {
	t.Helper()
	opts, err := Decode("icmp", raw)
	if err != nil {
		t.Fatalf("Decode(%v): %v", raw, err)
	}
	return probe.Target{Host: host, Check: "icmp", Protocol: probe.ICMP, Options: opts, Timeout: 5 * time.Second}
}

// needRaw skips a test that needs a raw ICMP socket when the process may
// not open one.
func needRaw(t testing.TB, network string) {
	t.Helper()
	c, err := icmp.ListenPacket(network, "")
	if err != nil {
		t.Skipf("no raw ICMP socket (%v): run the tests as root", err)
	}
	c.Close()
}

// countingListen wraps listen and counts the sockets it opened.
type countingListen struct {
	mu     sync.Mutex
	opened []string
	listen icmpListen
}

func (c *countingListen) Listen(network, address string) (*icmp.PacketConn, error) {
	conn, err := c.listen(network, address)
	if err == nil {
		c.mu.Lock()
		c.opened = append(c.opened, network)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *countingListen) Opened() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.opened...)
}

// denyRaw refuses raw sockets like a process without CAP_NET_RAW.
func denyRaw(listen icmpListen) icmpListen {
	return func(network, address string) (*icmp.PacketConn, error) {
		if strings.HasPrefix(network, "ip") {
			return nil, os.NewSyscallError("socket", syscall.EPERM)
		}
		return listen(network, address)
	}
}

// allowPingSockets lets every group open datagram ping sockets for the
// length of the test, like `sysctl net.ipv4.ping_group_range`.
func allowPingSockets(t *testing.T) {
	t.Helper()
	const path = "/proc/sys/net/ipv4/ping_group_range"
	old, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("ping_group_range: %v", err)
	}
	if err := os.WriteFile(path, []byte("0 2147483647"), 0o644); err != nil {
		t.Skipf("cannot allow ping sockets (%v): run the tests as root", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Errorf("restore ping_group_range: %v", err)
		}
	})
}

// assertIdle checks that p holds no socket and no reader once its checks
// are done.
func assertIdle(t *testing.T, p *pinger) {
	t.Helper()
	for _, e := range []*icmpEndpoint{p.v4, p.v6} {
		e.mu.Lock()
		cur := e.cur
		e.mu.Unlock()
		if cur != nil {
			t.Errorf("v6=%v: socket still open after the checks ended", e.v6)
		}
	}
}

func checkLoopback(t *testing.T, p *pinger, wantSocket string) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			r := probe.Run(t.Context(), p, icmpTarget(t, host, nil))
			if r.Outcome != probe.OutcomeOK {
				t.Fatalf("outcome = %v (%v), want ok", r.Outcome, r.Err)
			}
			if r.Details["socket"] != wantSocket {
				t.Errorf("socket = %q, want %q", r.Details["socket"], wantSocket)
			}
			if r.Details["sent"] != "3" || r.Details["received"] != "3" {
				t.Errorf("sent/received = %s/%s, want 3/3", r.Details["sent"], r.Details["received"])
			}
			if loss, ok := r.Values[ValueICMPLoss]; !ok || loss != 0 {
				t.Errorf("loss = %v (set %v), want 0", loss, ok)
			}
			if rtt := r.Values[ValueICMPRTT]; rtt <= 0 {
				t.Errorf("rtt = %v, want > 0", rtt)
			}
		})
	}
	assertIdle(t, p)
}

func TestICMPRawLoopback(t *testing.T) {
	needRaw(t, "ip4:icmp")
	checkLoopback(t, newPinger(icmp.ListenPacket), "raw")
}

func TestICMPDatagramLoopback(t *testing.T) {
	allowPingSockets(t)
	checkLoopback(t, newPinger(denyRaw(icmp.ListenPacket)), "datagram")
}

func TestICMPRegistered(t *testing.T) {
	needRaw(t, "ip4:icmp")
	r := Check(t.Context(), icmpTarget(t, "127.0.0.1", map[string]any{"count": 1}))
	if r.Outcome != probe.OutcomeOK || r.Details["sent"] != "1" {
		t.Fatalf("outcome = %v (%v), sent %s; want ok after 1 echo", r.Outcome, r.Err, r.Details["sent"])
	}
	if err := ICMPAvailable("ip4"); err != nil {
		t.Errorf("ICMPAvailable(ip4) = %v", err)
	}
	assertIdle(t, icmpPinger)
}

func TestICMPNoSocket(t *testing.T) {
	p := newPinger(func(network, _ string) (*icmp.PacketConn, error) {
		if strings.HasPrefix(network, "ip") {
			return nil, os.NewSyscallError("socket", syscall.EPERM)
		}
		return nil, os.NewSyscallError("socket", syscall.EACCES)
	})
	r := probe.Run(t.Context(), p, icmpTarget(t, "127.0.0.1", nil))
	if r.Outcome != probe.OutcomeLocalError || r.Details[probe.DetailReason] != probe.ReasonICMPPermission {
		t.Errorf("outcome = %v, reason %q; want local_error, %q", r.Outcome, r.Details[probe.DetailReason], probe.ReasonICMPPermission)
	}
	var se *ICMPSocketError
	if !errors.As(r.Err, &se) || !errors.Is(r.Err, syscall.EPERM) || !errors.Is(r.Err, syscall.EACCES) {
		t.Errorf("error %v: want an ICMPSocketError wrapping EPERM and EACCES", r.Err)
	}
	for _, want := range []string{"CAP_NET_RAW", "net.ipv4.ping_group_range", "ip4:icmp", "udp4"} {
		if !strings.Contains(r.Error(), want) {
			t.Errorf("error %q does not name %s", r.Error(), want)
		}
	}
	// Expecting the flow to be blocked does not turn a local problem into a pass.
	tg := icmpTarget(t, "::1", nil)
	tg.Expect = probe.ExpectDeny
	if r := probe.Run(t.Context(), p, tg); r.Success || !strings.Contains(r.Error(), "ip6:ipv6-icmp") {
		t.Errorf("deny: success %v, error %v; want a failure naming ip6:ipv6-icmp", r.Success, r.Err)
	}
}

func TestICMPSharedSocket(t *testing.T) {
	needRaw(t, "ip4:icmp")
	cl := &countingListen{listen: icmp.ListenPacket}
	p := newPinger(cl.Listen)
	// Hold the socket open so that every check below finds it open.
	s, err := p.v4.acquire()
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	results := make([]probe.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = probe.Run(t.Context(), p, icmpTarget(t, "127.0.0.1", map[string]any{"count": 2}))
		})
	}
	wg.Wait()
	p.v4.release(s)
	for i, r := range results {
		if r.Outcome != probe.OutcomeOK || r.Details["received"] != "2" {
			t.Errorf("check %d: outcome %v (%v), received %s; want ok with 2 replies", i, r.Outcome, r.Err, r.Details["received"])
		}
	}
	if got := cl.Opened(); len(got) != 1 || got[0] != "ip4:icmp" {
		t.Errorf("sockets opened = %v, want one ip4:icmp", got)
	}
	assertIdle(t, p)
}

func TestICMPSourceAddress(t *testing.T) {
	needRaw(t, "ip4:icmp")
	// A second raw socket sees the echo requests arrive on the loopback,
	// with the source address they were sent from.
	obs, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	p := newPinger(icmp.ListenPacket)
	tg := icmpTarget(t, "127.0.0.1", map[string]any{"count": 1})
	tg.SourceAddress = "127.0.0.2"
	r := probe.Run(t.Context(), p, tg)
	if r.Outcome != probe.OutcomeOK {
		t.Fatalf("outcome = %v (%v), want ok", r.Outcome, r.Err)
	}
	_ = obs.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for range 1000 {
		n, from, err := obs.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no echo request seen from 127.0.0.2: %v", err)
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEcho {
			continue
		}
		if from.(*net.IPAddr).IP.Equal(net.IPv4(127, 0, 0, 2)) {
			return
		}
	}
	t.Fatal("no echo request seen from 127.0.0.2")
}

func TestICMPSourceFamilyMismatch(t *testing.T) {
	p := newPinger(icmp.ListenPacket)
	tg := icmpTarget(t, "::1", nil)
	tg.SourceAddress = "127.0.0.1"
	tg.IPFamily = "ip6"
	r := probe.Run(t.Context(), p, tg)
	if r.Outcome == probe.OutcomeOK || !strings.Contains(r.Error(), "different families") {
		t.Errorf("outcome %v, error %v; want a failure about different families", r.Outcome, r.Err)
	}
}

func TestICMPContextDone(t *testing.T) {
	needRaw(t, "ip4:icmp")
	p := newPinger(icmp.ListenPacket)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := p.Check(ctx, icmpTarget(t, "127.0.0.1", nil))
	if r.Outcome != probe.OutcomeTimeout || r.Details["sent"] != "0" {
		t.Errorf("outcome %v, sent %s; want timeout with nothing sent", r.Outcome, r.Details["sent"])
	}
	assertIdle(t, p)
}

func TestICMPOptions(t *testing.T) {
	bad := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"count": 0}, "count 0: want 1 to 100"},
		{map[string]any{"reply_timeout": "0s"}, "reply_timeout 0s: want more than 0"},
		{map[string]any{"interval": "-1s"}, "interval -1s is negative"},
		{map[string]any{"size": 4}, "size 4: want 8 to 65000 bytes"},
		{map[string]any{"ttl": 3}, `unknown option "ttl"`},
	}
	for _, tc := range bad {
		_, err := Decode("icmp", tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%v) = %v, want error containing %q", tc.raw, err, tc.want)
		}
	}
	o, err := Decode("icmp", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := o.(*ICMPOptions); d.Count != 3 || d.ReplyTimeout != time.Second || d.Interval != 0 || d.Size != 56 {
		t.Errorf("defaults = %+v", d)
	}
}

// BenchmarkICMPLoopback runs many concurrent icmp checks (one echo each)
// to 127.0.0.1 over the one shared raw socket.
//
//	go test -run '^$' -bench ICMPLoopback -benchmem ./checks/
func BenchmarkICMPLoopback(b *testing.B) {
	needRaw(b, "ip4:icmp")
	p := newPinger(icmp.ListenPacket)
	tg := icmpTarget(b, "127.0.0.1", map[string]any{"count": 1})
	for _, par := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("concurrent=%d", par), func(b *testing.B) {
			b.SetParallelism(par)
			var failed sync.Once
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r := probe.Run(context.Background(), p, tg); r.Outcome != probe.OutcomeOK {
						failed.Do(func() { b.Errorf("outcome %v: %v", r.Outcome, r.Err) })
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}
