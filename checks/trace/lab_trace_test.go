//go:build lab

package trace

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// The trace tests build their own chain of namespaces (testlab.NewChain)
// and send traffic only inside it.

const (
	labTCPPort = 389 // a listener in the server namespace
	labUDPPort = 123 // a UDP echo in the server namespace
)

// labChain is a chain with a TCP listener and a UDP echo in its server
// namespace.
func labChain(t *testing.T) *testlab.Chain {
	c := testlab.NewChain(t)
	c.Do(t, testlab.ChainServer, func() {
		l, err := net.Listen("tcp", ":389")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for i := 0; i < 1000; i++ {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
		pc, err := net.ListenPacket("udp", ":123")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 1500)
			for i := 0; i < 1000; i++ {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
	})
	return c
}

// runIn runs a trace from the client namespace.
func runIn(t *testing.T, c *testlab.Chain, tr *Tracer, req Request) *Report {
	t.Helper()
	var rep *Report
	var err error
	c.Do(t, testlab.ChainClient, func() { rep, err = tr.Run(context.Background(), req) })
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	return rep
}

func labReq(v6 bool, proto probe.Protocol, port int) Request {
	return Request{Protocol: proto, Port: port, Destination: netip.MustParseAddr(testlab.ChainAddr(testlab.ChainServer, v6)),
		Source:  netip.MustParseAddr(testlab.ChainAddr(testlab.ChainClient, v6)),
		MaxHops: 8, HopTimeout: 300 * time.Millisecond, Tries: 2, Compare: true}
}

func families(t *testing.T, fn func(t *testing.T, v6 bool, addr func(int) string)) {
	for _, v6 := range []bool{false, true} {
		name := "IPv4"
		if v6 {
			name = "IPv6"
		}
		t.Run(name, func(t *testing.T) { fn(t, v6, func(i int) string { return testlab.ChainAddr(i, v6) }) })
	}
}

func wantVerdict(t *testing.T, rep *Report, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(rep.Verdict, p) {
			t.Errorf("verdict\n  %s\nlacks\n  %s", rep.Verdict, p)
		}
	}
	if t.Failed() {
		for _, h := range rep.Flow.Hops {
			t.Logf("hop %+v", h)
		}
	}
}

func TestTraceLabOpenPath(t *testing.T) {
	c := labChain(t)
	families(t, func(t *testing.T, v6 bool, addr func(int) string) {
		for _, proto := range []probe.Protocol{probe.TCP, probe.UDP, probe.ICMP} {
			port := map[probe.Protocol]int{probe.TCP: labTCPPort, probe.UDP: labUDPPort}[proto]
			req := labReq(v6, proto, port)
			req.Payload = []byte("trace")
			rep := runIn(t, c, &Tracer{}, req)
			if !rep.Reached || len(rep.Flow.Hops) != 4 {
				t.Fatalf("%s: reached %v after %d hops, want the server at hop 4: %s", proto, rep.Reached, len(rep.Flow.Hops), rep.Verdict)
			}
			for i, want := range []int{testlab.ChainRouterA, testlab.ChainFirewallB, testlab.ChainRouterC, testlab.ChainServer} {
				if got := rep.Flow.Hops[i].Addr.String(); got != addr(want) {
					t.Errorf("%s hop %d: %s, want %s", proto, i+1, got, addr(want))
				}
			}
			wantVerdict(t, rep, "the path is open")
		}
	})
}

func TestTraceLabDrop(t *testing.T) {
	c := labChain(t)
	c.Block(t, "tcp", labTCPPort, testlab.Drop)
	c.Block(t, "udp", labUDPPort, testlab.Drop)
	families(t, func(t *testing.T, v6 bool, addr func(int) string) {
		b := addr(testlab.ChainFirewallB)
		rep := runIn(t, c, &Tracer{}, labReq(v6, probe.TCP, labTCPPort))
		wantVerdict(t, rep, "answered up to hop 2 ("+b+"); hop 3 silent for tcp/389 while ICMP echo passes it (reaches the destination at hop 4): a filter at or after "+b+" drops this port")
		if rep.Reached || rep.BlockedHop != 3 || rep.LastHop.Addr.String() != b {
			t.Errorf("reached %v, blocked hop %d, last hop %s", rep.Reached, rep.BlockedHop, rep.LastHop.Addr)
		}
		t.Logf("%s", rep.Verdict)

		rep = runIn(t, c, &Tracer{}, labReq(v6, probe.UDP, labUDPPort))
		wantVerdict(t, rep, "hop 3 silent for udp/123 while ICMP echo passes it", "at or after "+b)

		// Without raw sockets the error queue still finds the place; the
		// comparison is left out with a note.
		rep = runIn(t, c, &Tracer{NoRaw: true}, labReq(v6, probe.TCP, labTCPPort))
		wantVerdict(t, rep, "hop 3 silent for tcp/389: a filter at or after "+b+" drops it")
		if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "CAP_NET_RAW") {
			t.Errorf("notes %q, want the missing comparison and its remedy", rep.Notes)
		}
	})
}

func TestTraceLabRejectReset(t *testing.T) {
	c := labChain(t)
	c.Block(t, "tcp", labTCPPort, testlab.RejectTCPReset)
	families(t, func(t *testing.T, v6 bool, addr func(int) string) {
		rep := runIn(t, c, &Tracer{}, labReq(v6, probe.TCP, labTCPPort))
		wantVerdict(t, rep, "RST to the TTL-3 SYN, claiming to come from "+addr(testlab.ChainServer),
			"ICMP echo reaches the destination only at hop 4: not from the destination, a firewall at or after "+addr(testlab.ChainFirewallB)+" rejects tcp/389 with a reset")
		if rep.Reached {
			t.Error("a forged reset counted as reaching the destination")
		}
	})
}

func TestTraceLabRejectAdminProhibited(t *testing.T) {
	c := labChain(t)
	c.Block(t, "tcp", labTCPPort, testlab.RejectAdminProhib)
	c.Block(t, "udp", labUDPPort, testlab.RejectAdminProhib)
	families(t, func(t *testing.T, v6 bool, addr func(int) string) {
		want := "hop 2 (" + addr(testlab.ChainFirewallB) + ") sends admin-prohibited for "
		rep := runIn(t, c, &Tracer{}, labReq(v6, probe.TCP, labTCPPort))
		wantVerdict(t, rep, want+"tcp/389")
		rep = runIn(t, c, &Tracer{NoRaw: true}, labReq(v6, probe.UDP, labUDPPort))
		wantVerdict(t, rep, want+"udp/123")
	})
}

func TestTraceLabClosedPortAtTheServer(t *testing.T) {
	c := labChain(t)
	families(t, func(t *testing.T, v6 bool, addr func(int) string) {
		rep := runIn(t, c, &Tracer{}, labReq(v6, probe.TCP, 7))
		wantVerdict(t, rep, "RST from the destination "+addr(testlab.ChainServer)+" at hop 4: the path is open, nothing listens on tcp/7")
		req := labReq(v6, probe.TCP, labTCPPort)
		req.AfterConnect = "service_timeout"
		rep = runIn(t, c, &Tracer{}, req)
		wantVerdict(t, rep, "SYN-ACK from the destination "+addr(testlab.ChainServer)+" at hop 4 but the check ended in service_timeout later: the path is open, the service hangs")
	})
}

func TestTraceLabMTUBlackHole(t *testing.T) {
	c := labChain(t)
	c.BlackHole(t, 1280, false)
	families(t, func(t *testing.T, v6 bool, addr func(int) string) {
		req := labReq(v6, probe.ICMP, 0)
		req.MTU = true
		rep := runIn(t, c, &Tracer{}, req)
		m := rep.MTU
		if m == nil {
			t.Fatalf("no MTU result: %q", rep.Notes)
		}
		if m.Largest != 1280 || m.LocalMTU != 1500 || m.FragFrom.IsValid() || m.BigReach.Addr.String() != addr(testlab.ChainRouterC) {
			t.Errorf("got %+v", m)
		}
		wantVerdict(t, rep, "the largest packet that passes is 1280 bytes; packets of 1281 bytes reach hop 3 ("+addr(testlab.ChainRouterC)+") and vanish after it with no fragmentation-needed")
	})
}

func TestTraceLabMTUFragNeeded(t *testing.T) {
	c := labChain(t)
	c.BlackHole(t, 1280, true)
	families(t, func(t *testing.T, v6 bool, addr func(int) string) {
		req := labReq(v6, probe.ICMP, 0)
		req.MTU = true
		rep := runIn(t, c, &Tracer{}, req)
		m := rep.MTU
		if m == nil || m.Largest != 1280 || m.FragFrom.String() != addr(testlab.ChainRouterC) || m.FragHop != 3 || m.NextHopMTU != 1280 {
			t.Fatalf("got %+v, notes %q", m, rep.Notes)
		}
		wantVerdict(t, rep, "hop 3 ("+addr(testlab.ChainRouterC)+") sends fragmentation-needed (MTU 1280)")
	})
}
