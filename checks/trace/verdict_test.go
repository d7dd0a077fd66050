package trace

import (
	"strings"
	"testing"

	"net/netip"

	"github.com/flowprobe/flowprobe/probe"
)

func hops(spec ...string) []Hop {
	var out []Hop
	for i, s := range spec {
		h := Hop{TTL: i + 1, Reply: ReplySilent}
		if s != "" {
			kind, addr, _ := strings.Cut(s, "@")
			h.Reply, h.Code, _ = strings.Cut(kind, ":")
			h.Addr = netip.MustParseAddr(addr)
		}
		out = append(out, h)
	}
	return out
}

func TestTraceVerdicts(t *testing.T) {
	const dst = "192.0.2.9"
	te := func(a string) string { return ReplyTimeExceeded + "@" + a }
	echoTo4 := &Path{Reached: true, Hops: hops(te("192.0.2.1"), te("192.0.2.2"), te("192.0.2.3"), ReplyEchoReply+"@"+dst)}
	for _, tc := range []struct {
		name       string
		proto      probe.Protocol
		flow       []Hop
		echo       *Path
		after      string
		want       string
		reached    bool
		blockedHop int
	}{
		{"drop with echo passing", probe.TCP, hops(te("192.0.2.1"), te("192.0.2.2"), "", "", ""), echoTo4, "",
			"answered up to hop 2 (192.0.2.2); hop 3 silent for tcp/389 while ICMP echo passes it (reaches the destination at hop 4): a filter at or after 192.0.2.2 drops this port", false, 3},
		{"drop for all traffic", probe.TCP, hops(te("192.0.2.1"), "", "", ""), &Path{Hops: hops(te("192.0.2.1"), "", "", "")}, "",
			"ICMP echo stops there too: the path ends at or after 192.0.2.1", false, 2},
		{"no comparison", probe.TCP, hops(te("192.0.2.1"), "", "", ""), nil, "",
			"hop 2 silent for tcp/389: a filter at or after 192.0.2.1 drops it", false, 2},
		{"admin-prohibited", probe.TCP, hops(te("192.0.2.1"), te("192.0.2.2"), "unreachable:admin-prohibited@192.0.2.2"), nil, "",
			"hop 2 (192.0.2.2) sends admin-prohibited for tcp/389", false, 3},
		{"forged reset", probe.TCP, hops(te("192.0.2.1"), te("192.0.2.2"), ReplyReset+"@"+dst), echoTo4, "",
			"RST to the TTL-3 SYN, claiming to come from 192.0.2.9, but ICMP echo reaches the destination only at hop 4: not from the destination, a firewall at or after 192.0.2.2 rejects tcp/389 with a reset", false, 3},
		{"destination reset", probe.TCP, hops(te("192.0.2.1"), te("192.0.2.2"), te("192.0.2.3"), ReplyReset+"@"+dst), echoTo4, "",
			"RST from the destination 192.0.2.9 at hop 4: the path is open, nothing listens on tcp/389", true, 0},
		{"hung service", probe.TCP, hops(te("192.0.2.1"), ReplySynAck+"@"+dst), nil, "service_timeout",
			"SYN-ACK from the destination 192.0.2.9 at hop 2 but the check ended in service_timeout later: the path is open, the service hangs", true, 0},
		{"udp silent at the destination", probe.UDP, hops(te("192.0.2.1"), te("192.0.2.2"), te("192.0.2.3"), "", "", ""), echoTo4, "",
			"hop 4 silent for udp/389, the destination itself (ICMP echo reaches it at hop 4): it is open|filtered on the host", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{Protocol: tc.proto, Flow: Path{Probe: probeName(tc.proto, 389), Hops: tc.flow}, Echo: tc.echo}
			last := tc.flow[len(tc.flow)-1]
			if last.final() {
				rep.Flow.Reached = reachedBy(last, netip.MustParseAddr(dst))
			}
			rep.Reached = rep.Flow.Reached
			judge(rep, Request{Protocol: tc.proto, Port: 389, AfterConnect: tc.after})
			if !strings.Contains(rep.Verdict, tc.want) {
				t.Errorf("verdict\n %q\nwant it to contain\n %q", rep.Verdict, tc.want)
			}
			if rep.Reached != tc.reached || rep.BlockedHop != tc.blockedHop {
				t.Errorf("reached %v blocked hop %d, want %v %d", rep.Reached, rep.BlockedHop, tc.reached, tc.blockedHop)
			}
		})
	}
}
