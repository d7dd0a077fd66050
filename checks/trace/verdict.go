package trace

import (
	"fmt"
	"net/netip"

	"github.com/flowprobe/flowprobe/probe"
)

// MTUResult is the outcome of a path MTU probe. Sizes are whole IP packets.
type MTUResult struct {
	// Largest is the largest packet that reached the destination, 0 when
	// not even the protocol's minimum did.
	Largest  int `json:"largest"`
	LocalMTU int `json:"local_mtu"`
	// FragFrom is the address that sent fragmentation-needed (packet too
	// big), with the MTU it named; FragHop is its hop, 0 when unknown.
	FragFrom   netip.Addr `json:"frag_needed_from,omitzero"`
	FragHop    int        `json:"frag_needed_hop,omitempty"`
	NextHopMTU int        `json:"next_hop_mtu,omitempty"`
	// FirstFailing and BigReach describe a black hole: packets of
	// FirstFailing bytes got Time Exceeded up to BigReach and vanished
	// after it, with no fragmentation-needed.
	FirstFailing int    `json:"first_failing,omitempty"`
	BigReach     Hop    `json:"big_packets_reach,omitzero"`
	Summary      string `json:"summary"`
}

func (m *MTUResult) summarize(rep *Report) {
	switch {
	case m.Largest == 0:
		m.Summary = "not even the smallest packet a link must carry reached the destination with Don't Fragment set"
	case m.Largest == m.LocalMTU:
		m.Summary = fmt.Sprintf("packets of %d bytes (the local link MTU) reach the destination: no smaller MTU on the path", m.Largest)
	case m.FragFrom.IsValid():
		m.FragHop = hopOf(rep, m.FragFrom)
		m.Summary = fmt.Sprintf("the largest packet that passes is %d bytes; %s sends fragmentation-needed (MTU %d)",
			m.Largest, hopName(m.FragHop, m.FragFrom), m.NextHopMTU)
	case m.BigReach.Answered():
		m.Summary = fmt.Sprintf("the largest packet that passes is %d bytes; packets of %d bytes reach %s and vanish after it with no fragmentation-needed: an MTU black hole at or after %s (it fails to send fragmentation-needed, or a filter drops it)",
			m.Largest, m.FirstFailing, hopName(m.BigReach.TTL, m.BigReach.Addr), m.BigReach.Addr)
	default:
		m.Summary = fmt.Sprintf("the largest packet that passes is %d bytes; larger ones vanish with no fragmentation-needed (an MTU black hole)", m.Largest)
	}
}

// hopOf returns the hop at which addr answered Time Exceeded in the flow's
// or the echo trace, 0 when it did not.
func hopOf(rep *Report, addr netip.Addr) int {
	paths := []*Path{&rep.Flow}
	if rep.Echo != nil {
		paths = append(paths, rep.Echo)
	}
	for _, p := range paths {
		for _, h := range p.Hops {
			if h.Addr == addr && h.Reply == ReplyTimeExceeded {
				return h.TTL
			}
		}
	}
	return 0
}

func hopName(ttl int, addr netip.Addr) string {
	if ttl == 0 {
		return addr.String()
	}
	return fmt.Sprintf("hop %d (%s)", ttl, addr)
}

// judge fills in the report's verdict from its paths.
func judge(rep *Report, req Request) {
	fl := &rep.Flow
	name := fl.Probe
	for _, h := range fl.Hops {
		if h.Reply == ReplyTimeExceeded {
			rep.LastHop = h
		}
	}
	upTo := "no hop answered"
	if rep.LastHop.Answered() {
		upTo = "answered up to " + hopName(rep.LastHop.TTL, rep.LastHop.Addr)
	}
	var end Hop
	if n := len(fl.Hops); n > 0 {
		end = fl.Hops[n-1]
	}
	echoAt := 0 // hop at which the echo reached the destination
	if rep.Echo != nil && rep.Echo.Reached {
		echoAt = rep.Echo.Hops[len(rep.Echo.Hops)-1].TTL
	}
	hung := req.AfterConnect != ""
	switch {
	case rep.Reached && end.Reply == ReplyReset && echoAt > end.TTL:
		// The reset claims the destination's address but came back to a
		// TTL too small to reach it: something on the way forged it.
		rep.Reached = false
		rep.BlockedHop = end.TTL
		rep.Verdict = fmt.Sprintf("RST to the TTL-%d SYN, claiming to come from %s, but ICMP echo reaches the destination only at hop %d: not from the destination, a firewall at or after %s rejects %s with a reset",
			end.TTL, end.Addr, echoAt, where(rep.LastHop), name)
	case rep.Reached && end.Reply == ReplyReset:
		rep.Verdict = fmt.Sprintf("RST from the destination %s at hop %d: the path is open, nothing listens on %s (or the host itself rejects it)", end.Addr, end.TTL, name)
		if rep.Echo == nil {
			rep.Verdict += "; without an ICMP echo comparison a firewall's reset cannot be told apart"
		}
	case rep.Reached && end.Reply == ReplySynAck && hung:
		rep.Verdict = fmt.Sprintf("SYN-ACK from the destination %s at hop %d but the check ended in %s later: the path is open, the service hangs", end.Addr, end.TTL, req.AfterConnect)
	case rep.Reached && end.Reply == ReplyUnreachable:
		rep.Verdict = fmt.Sprintf("the destination %s answers %s at hop %d: the path is open, nothing listens on %s", end.Addr, end.Code, end.TTL, name)
	case rep.Reached:
		rep.Verdict = fmt.Sprintf("the destination %s answers %s with %s at hop %d: the path is open", end.Addr, name, end.Reply, end.TTL)
	case end.Reply == ReplyUnreachable:
		rep.BlockedHop = end.TTL
		at := hopOf(rep, end.Addr)
		rep.Verdict = fmt.Sprintf("%s sends %s for %s: a router or firewall there rejects it", hopName(at, end.Addr), end.Code, name)
		if at == 0 {
			rep.Verdict = fmt.Sprintf("%s; hop %d: %s sends %s for %s: a router or firewall there rejects it", upTo, end.TTL, end.Addr, end.Code, name)
		}
	default: // silent from some hop on
		rep.BlockedHop = rep.LastHop.TTL + 1
		silentFor := fmt.Sprintf("%s; hop %d silent for %s", upTo, rep.BlockedHop, name)
		switch {
		case rep.Echo == nil:
			rep.Verdict = fmt.Sprintf("%s: a filter at or after %s drops it", silentFor, where(rep.LastHop))
		case echoAt == rep.BlockedHop && req.Protocol == probe.UDP:
			rep.Verdict = fmt.Sprintf("%s, the destination itself (ICMP echo reaches it at hop %d): it is open|filtered on the host — nothing answers this datagram", silentFor, echoAt)
		case echoAt > 0:
			rep.Verdict = fmt.Sprintf("%s while ICMP echo passes it (reaches the destination at hop %d): a filter at or after %s drops this port", silentFor, echoAt, where(rep.LastHop))
		case rep.Echo.last().TTL > rep.LastHop.TTL:
			l := rep.Echo.last()
			rep.Verdict = fmt.Sprintf("%s while ICMP echo gets on to %s: a filter at or after %s drops this port", silentFor, hopName(l.TTL, l.Addr), where(rep.LastHop))
		default:
			rep.Verdict = fmt.Sprintf("%s and ICMP echo stops there too: the path ends at or after %s (routing, or a filter for all traffic)", silentFor, where(rep.LastHop))
		}
	}
	if rep.MTU != nil && rep.MTU.Summary != "" {
		rep.Verdict += "; path MTU: " + rep.MTU.Summary
	}
}

// where names the place after the last answering hop.
func where(last Hop) string {
	if !last.Answered() {
		return "this machine's first hop"
	}
	return last.Addr.String()
}
