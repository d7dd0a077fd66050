package checks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Loopback peers shared by the transport checks' tests.

// loopbackClosedTCPPort returns a TCP port on 127.0.0.1 that nothing
// listens on: it listens, notes the port and closes.
func loopbackClosedTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// loopbackClosedUDPPort returns a UDP port on 127.0.0.1 that nothing
// listens on, so a datagram to it draws an ICMP port unreachable.
func loopbackClosedUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// loopbackTCPPeer listens on 127.0.0.1:0 and runs serve for every
// connection it accepts, closing the connection afterwards. When the test
// ends it closes the listener and every open connection and waits for the
// serving goroutines.
func loopbackTCPPeer(t testing.TB, serve func(c net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				serve(c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// silentServe accepts and then never says a word; it returns when the
// client goes away or the peer is closed.
func silentServe(c net.Conn) {
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

func loopbackTarget(kind string, port int, opts any) probe.Target {
	return probe.Target{Host: "127.0.0.1", Port: port, Protocol: probe.TCP, Check: kind, Options: opts}
}

func TestDialLiteralAddressSkipsResolve(t *testing.T) {
	port := loopbackTCPPeer(t, func(net.Conn) {})
	tg := loopbackTarget("tcp", port, nil)
	var r probe.Result
	c, err := dial(t.Context(), &tg, "tcp", &r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r.Phases[probe.PhaseResolve] != 0 {
		t.Errorf("resolve phase %v for a literal address, want 0", r.Phases[probe.PhaseResolve])
	}
	if r.Phases[probe.PhaseConnect] <= 0 {
		t.Errorf("connect phase not timed")
	}
	if got := c.RemoteAddr().String(); got != "127.0.0.1:"+strconv.Itoa(port) {
		t.Errorf("connected to %s", got)
	}
}

func TestDialNameIsResolvedAndTimed(t *testing.T) {
	port := loopbackTCPPeer(t, func(net.Conn) {})
	tg := probe.Target{Host: "localhost", Port: port, IPFamily: "ip4"}
	var r probe.Result
	c, err := dial(t.Context(), &tg, "tcp", &r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r.Phases[probe.PhaseResolve] <= 0 {
		t.Errorf("resolve phase not timed for a name")
	}
	if ap := c.RemoteAddr().(*net.TCPAddr).AddrPort(); ap.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("connected to %s, want 127.0.0.1", ap)
	}
}

func TestDialBindsSourceAddress(t *testing.T) {
	seen := make(chan string, 1)
	port := loopbackTCPPeer(t, func(c net.Conn) {
		seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
	})
	tg := loopbackTarget("tcp", port, nil)
	tg.SourceAddress = "127.0.0.2"
	var r probe.Result
	c, err := dial(t.Context(), &tg, "tcp", &r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-seen; got != "127.0.0.2" {
		t.Errorf("the peer saw the client as %s, want 127.0.0.2", got)
	}
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("local address %s, want 127.0.0.2", got)
	}
}

func TestDialUDPBindsSourceAddress(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tg := probe.Target{Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port, SourceAddress: "127.0.0.3"}
	var r probe.Result
	c, err := dial(t.Context(), &tg, "udp", &r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [8]byte
	_, from, err := pc.ReadFrom(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if got := from.(*net.UDPAddr).IP.String(); got != "127.0.0.3" {
		t.Errorf("datagram from %s, want 127.0.0.3", got)
	}
}

func TestDialFamilyChoice(t *testing.T) {
	cases := []struct {
		name          string
		host, family  string
		source        string
		wantErr       bool
		wantOutcome   probe.Outcome
		wantRemoteIP4 bool
	}{
		{name: "ip4 literal with ip4", host: "127.0.0.1", family: "ip4", wantRemoteIP4: true},
		{name: "ip6 literal with ip4", host: "::1", family: "ip4", wantErr: true, wantOutcome: probe.OutcomeLocalError},
		{name: "ip4 literal with ip6", host: "127.0.0.1", family: "ip6", wantErr: true, wantOutcome: probe.OutcomeLocalError},
		{name: "IPv4 source implies ip4", host: "::1", source: "127.0.0.1", wantErr: true, wantOutcome: probe.OutcomeLocalError},
		{name: "name with ip4", host: "localhost", family: "ip4", wantRemoteIP4: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := probe.Target{Host: tc.host, IPFamily: tc.family, SourceAddress: tc.source}
			var r probe.Result
			a, err := resolve(t.Context(), &tg, &r)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("resolved to %s, want an error", a)
				}
				if got := Classify(err, false); got != tc.wantOutcome {
					t.Errorf("outcome %s, want %s (%v)", got, tc.wantOutcome, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Is4() != tc.wantRemoteIP4 {
				t.Errorf("resolved to %s", a)
			}
		})
	}
}

func TestDialIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer ln.Close()
	tg := probe.Target{Host: "::1", Port: ln.Addr().(*net.TCPAddr).Port, IPFamily: "ip6"}
	var r probe.Result
	c, err := dial(t.Context(), &tg, "tcp", &r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.LocalAddr().(*net.TCPAddr).IP.To4() != nil {
		t.Errorf("IPv6 target dialled from %s", c.LocalAddr())
	}
}

func TestDialBadSourceAddress(t *testing.T) {
	tg := loopbackTarget("tcp", 9, nil)
	tg.SourceAddress = "not-an-address"
	var r probe.Result
	if c, err := dial(t.Context(), &tg, "tcp", &r); err == nil {
		c.Close()
		t.Fatal("dial succeeded with a bad source address")
	}
}

func TestDialSetsDeadlineFromContext(t *testing.T) {
	port := loopbackTCPPeer(t, silentServe)
	tg := loopbackTarget("tcp", port, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var r probe.Result
	c, err := dial(ctx, &tg, "tcp", &r)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No stopOnDone here: only the conn's own deadline ends this read.
	var b [8]byte
	if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a silent peer: %v, want the deadline", err)
	}
}

func TestStopOnDoneUnblocksOnCancel(t *testing.T) {
	port := loopbackTCPPeer(t, silentServe)
	tg := loopbackTarget("tcp", port, nil)
	ctx, cancel := context.WithCancel(t.Context())
	var r probe.Result
	c, err := dial(ctx, &tg, "tcp", &r) // no deadline: only cancel ends the read
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	release := stopOnDone(ctx, c)
	defer release()
	cancel()
	var b [8]byte
	if _, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after cancel: %v, want a deadline error", err)
	}
}

func TestDialPortDialsOtherPort(t *testing.T) {
	port := loopbackTCPPeer(t, func(net.Conn) {})
	tg := loopbackTarget("tcp", loopbackClosedTCPPort(t), nil)
	var r probe.Result
	c, err := dialPort(t.Context(), &tg, "tcp", port, &r)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
