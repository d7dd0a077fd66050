package checks

// The pinger's ICMP sockets: one per address family, shared by the running
// icmp checks, with a reader that routes replies and ICMP errors to the
// echoes waiting for them.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// icmpEndpoint is the shared ICMP socket of one address family.
type icmpEndpoint struct {
	v6     bool
	listen icmpListen

	mu  sync.Mutex
	cur *icmpSocket // the open socket, nil when none
	seq uint16      // last sequence number handed out
}

// icmpSocket is one open ICMP socket with its reader goroutine. Replies
// are routed to the waiting echoes by sequence number (and, on the raw
// socket, by ID); each echo carries a random token in its data, so a late
// reply to an earlier echo with the same number is never taken for a new
// one.
type icmpSocket struct {
	conn *icmp.PacketConn
	raw  bool
	id   uint16 // echo ID (the kernel sets it on the datagram socket)
	done chan struct{}

	// Guarded by the endpoint's mu.
	users   int
	waiting map[uint16]*echoWait
}

// echoWait is one echo in flight.
type echoWait struct {
	dst   netip.Addr
	seq   uint16
	token uint64
	ch    chan echoEvent // buffered: the reader never blocks
}

// echoEvent is what came back for an echo: a reply or an ICMP error.
type echoEvent struct {
	at      time.Time
	unreach *icmpError // nil for an echo reply
}

// icmpError is a Destination Unreachable or Time Exceeded about an echo.
type icmpError struct {
	v6         bool
	typ, code  int
	from       netip.Addr
	timeExceed bool
}

func (e *icmpError) String() string {
	what := "destination unreachable"
	if e.timeExceed {
		what = "time exceeded"
	}
	s := fmt.Sprintf("%s code %d", what, e.code)
	if name := icmpCodeName(e.v6, e.timeExceed, e.code); name != "" {
		s += " (" + name + ")"
	}
	return s + " from " + e.from.String()
}

// icmpCodeName names the codes of Destination Unreachable (RFC 792, 1812,
// 4443) and Time Exceeded.
func icmpCodeName(v6, timeExceeded bool, code int) string {
	if timeExceeded {
		return map[int]string{0: "hop limit exceeded in transit", 1: "fragment reassembly time exceeded"}[code]
	}
	if v6 {
		return map[int]string{
			0: "no route to destination", 1: "communication administratively prohibited",
			2: "beyond scope of source address", 3: "address unreachable", 4: "port unreachable",
			5: "source address failed ingress/egress policy", 6: "reject route to destination",
		}[code]
	}
	return map[int]string{
		0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
		4: "fragmentation needed", 5: "source route failed", 6: "destination net unknown",
		7: "destination host unknown", 9: "net administratively prohibited",
		10: "host administratively prohibited", 11: "net unreachable for type of service",
		12: "host unreachable for type of service", 13: "communication administratively prohibited",
		14: "host precedence violation", 15: "precedence cutoff in effect",
	}[code]
}

// ICMPSocketError says that neither kind of ICMP socket could be opened:
// the process lacks CAP_NET_RAW and its group is outside
// net.ipv4.ping_group_range. It is a problem of the host flowprobe runs on,
// not of the path, and Classify makes it a protocol_error so that it fails
// a check whatever its expectation.
type ICMPSocketError struct {
	V6       bool
	Raw, Dgm error
}

func (e *ICMPSocketError) Error() string {
	raw, dgm := "ip4:icmp", "udp4"
	if e.V6 {
		raw, dgm = "ip6:ipv6-icmp", "udp6"
	}
	return fmt.Sprintf("no ICMP socket: raw %s: %v (grant CAP_NET_RAW, e.g. setcap cap_net_raw+ep or "+
		"AmbientCapabilities=CAP_NET_RAW); datagram %s: %v (allow the process's group: "+
		"sysctl -w net.ipv4.ping_group_range=\"0 2147483647\")", raw, e.Raw, dgm, e.Dgm)
}

// Unwrap returns both causes.
func (e *ICMPSocketError) Unwrap() []error { return []error{e.Raw, e.Dgm} }

// acquire returns the endpoint's socket, opening it if none is open, and
// counts the caller as a user until release.
func (e *icmpEndpoint) acquire() (*icmpSocket, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		s, err := e.open()
		if err != nil {
			return nil, err
		}
		e.cur = s
	}
	e.cur.users++
	return e.cur, nil
}

// release ends one use of s; the last user closes it and waits for its
// reader to end.
func (e *icmpEndpoint) release(s *icmpSocket) {
	e.mu.Lock()
	s.users--
	last := s.users == 0
	if last && e.cur == s {
		e.cur = nil
	}
	e.mu.Unlock()
	if last {
		_ = s.conn.Close()
		<-s.done
	}
}

// open opens the raw socket, or else the datagram ping socket, and starts
// its reader. Called with mu held.
func (e *icmpEndpoint) open() (*icmpSocket, error) {
	rawNet, dgmNet, wildcard := "ip4:icmp", "udp4", "0.0.0.0"
	if e.v6 {
		rawNet, dgmNet, wildcard = "ip6:ipv6-icmp", "udp6", "::"
	}
	s := &icmpSocket{raw: true, done: make(chan struct{}), waiting: make(map[uint16]*echoWait)}
	c, rawErr := e.listen(rawNet, wildcard)
	if rawErr != nil {
		var dgmErr error
		c, dgmErr = e.listen(dgmNet, wildcard)
		if dgmErr != nil {
			return nil, &ICMPSocketError{V6: e.v6, Raw: rawErr, Dgm: dgmErr}
		}
		s.raw = false
	}
	s.conn = c
	growReadBuffer(c)
	if s.raw {
		s.id = uint16(rand.Uint32())
		// A raw socket gets a copy of every ICMP message for the host,
		// including the echo replies of every other pinger. Let only our
		// replies and the errors through, as ping does; the reader checks
		// again where a filter cannot be set.
		prog, _ := bpf.Assemble(echoFilter(e.v6, s.id))
		if p := c.IPv4PacketConn(); p != nil {
			_ = p.SetBPF(prog)
		}
		if p := c.IPv6PacketConn(); p != nil {
			_ = p.SetBPF(prog)
		}
	} else if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		s.id = uint16(a.Port)
	}
	go e.read(s)
	return s, nil
}

// echoFilter is the socket filter of a raw ICMP socket: echo replies with
// our ID, Destination Unreachable and Time Exceeded pass, the rest is
// dropped in the kernel. A raw IPv4 socket sees the IP header first, a raw
// IPv6 socket the ICMPv6 message.
func echoFilter(v6 bool, id uint16) []bpf.Instruction {
	reply, unreach, exceeded := uint32(ipv4.ICMPTypeEchoReply), uint32(ipv4.ICMPTypeDestinationUnreachable), uint32(ipv4.ICMPTypeTimeExceeded)
	var prog []bpf.Instruction
	if v6 {
		reply, unreach, exceeded = uint32(ipv6.ICMPTypeEchoReply), uint32(ipv6.ICMPTypeDestinationUnreachable), uint32(ipv6.ICMPTypeTimeExceeded)
		prog = []bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegX, Val: 0}}
	} else {
		prog = []bpf.Instruction{bpf.LoadMemShift{Off: 0}} // X = IHL * 4
	}
	return append(prog,
		bpf.LoadIndirect{Off: 0, Size: 1}, // type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: reply, SkipFalse: 2},
		bpf.LoadIndirect{Off: 4, Size: 2}, // echo ID
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipTrue: 3, SkipFalse: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unreach, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: exceeded, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	)
}

// icmpReadBuffer is the receive buffer of a shared ICMP socket: room for
// the replies of a few thousand concurrent echoes arriving at once (each
// takes about 1 KiB of buffer in the kernel), where the default of about
// 200 KiB drops replies under a burst.
const icmpReadBuffer = 4 << 20

// growReadBuffer enlarges the socket's receive buffer: beyond
// net.core.rmem_max where the process may (forceReadBuffer), else up to it.
func growReadBuffer(c *icmp.PacketConn) {
	var pc net.PacketConn
	if p := c.IPv4PacketConn(); p != nil {
		pc = p.PacketConn
	} else if p := c.IPv6PacketConn(); p != nil {
		pc = p.PacketConn
	}
	if forceReadBuffer(pc, icmpReadBuffer) {
		return
	}
	if rb, ok := pc.(interface{ SetReadBuffer(int) error }); ok {
		_ = rb.SetReadBuffer(icmpReadBuffer)
	}
}

// read receives every ICMP message of s and hands the ones about our echoes
// to their waiters, until s is closed.
func (e *icmpEndpoint) read(s *icmpSocket) {
	defer close(s.done)
	proto := 1
	if e.v6 {
		proto = 58
	}
	buf := make([]byte, 1500)
	for failures := 0; ; {
		n, peer, err := s.conn.ReadFrom(buf)
		if err != nil && !errors.Is(err, net.ErrClosed) && failures < 100 {
			failures++ // a passing error: read on
			continue
		}
		if err != nil {
			// Closed by the last user, or broken: in both cases let the
			// next check open a fresh socket. Echoes still waiting time out.
			e.mu.Lock()
			if e.cur == s {
				e.cur = nil
			}
			e.mu.Unlock()
			return
		}
		failures = 0
		e.dispatch(s, proto, buf[:n], peerAddr(peer), time.Now())
	}
}

func peerAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// dispatch routes one ICMP message.
func (e *icmpEndpoint) dispatch(s *icmpSocket, proto int, b []byte, from netip.Addr, at time.Time) {
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return
	}
	var (
		seq, id uint16
		dst     netip.Addr
		token   uint64
		ev      = echoEvent{at: at}
	)
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply || len(body.Data) < icmpMinSize {
			return
		}
		seq, id, dst = uint16(body.Seq), uint16(body.ID), from
		token = binary.BigEndian.Uint64(body.Data)
	case *icmp.DstUnreach:
		var ok bool
		if dst, id, seq, ok = embeddedEcho(e.v6, body.Data); !ok {
			return
		}
		ev.unreach = &icmpError{v6: e.v6, typ: icmpTypeNumber(m.Type), code: m.Code, from: from}
	case *icmp.TimeExceeded:
		var ok bool
		if dst, id, seq, ok = embeddedEcho(e.v6, body.Data); !ok {
			return
		}
		ev.unreach = &icmpError{v6: e.v6, typ: icmpTypeNumber(m.Type), code: m.Code, from: from, timeExceed: true}
	default:
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	w := s.waiting[seq]
	if w == nil || w.dst != dst || (s.raw && id != s.id) || (ev.unreach == nil && token != w.token) {
		return
	}
	delete(s.waiting, seq)
	w.ch <- ev
}

func icmpTypeNumber(t icmp.Type) int {
	switch t := t.(type) {
	case ipv4.ICMPType:
		return int(t)
	case ipv6.ICMPType:
		return int(t)
	}
	return -1
}

// embeddedEcho finds our echo request in the original datagram an ICMP
// error quotes: its destination, ID and sequence number.
func embeddedEcho(v6 bool, b []byte) (dst netip.Addr, id, seq uint16, ok bool) {
	var echo []byte
	if v6 {
		// IPv6 header (40 bytes) with next header ICMPv6, then type 128.
		if len(b) < 48 || b[0]>>4 != 6 || b[6] != 58 {
			return dst, 0, 0, false
		}
		dst = netip.AddrFrom16([16]byte(b[24:40]))
		echo = b[40:]
		if echo[0] != byte(ipv6.ICMPTypeEchoRequest) {
			return dst, 0, 0, false
		}
	} else {
		// IPv4 header (IHL words) with protocol ICMP, then type 8.
		if len(b) < 20 || b[0]>>4 != 4 {
			return dst, 0, 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl+8 || b[9] != 1 {
			return dst, 0, 0, false
		}
		dst = netip.AddrFrom4([4]byte(b[16:20]))
		echo = b[ihl:]
		if echo[0] != byte(ipv4.ICMPTypeEcho) {
			return dst, 0, 0, false
		}
	}
	return dst, binary.BigEndian.Uint16(echo[4:6]), binary.BigEndian.Uint16(echo[6:8]), true
}

// send registers an echo to dst and sends it from src (when valid); it
// returns the waiter and the time it was sent.
func (e *icmpEndpoint) send(s *icmpSocket, dst, src netip.Addr, data []byte) (*echoWait, time.Time, error) {
	w := &echoWait{dst: dst, token: rand.Uint64(), ch: make(chan echoEvent, 1)}
	e.mu.Lock()
	found := false
	for range 1 << 16 {
		e.seq++
		if s.waiting[e.seq] == nil {
			found = true
			break
		}
	}
	if !found {
		e.mu.Unlock()
		return nil, time.Time{}, errors.New("icmp echo: 65536 echoes in flight")
	}
	w.seq = e.seq
	s.waiting[w.seq] = w
	e.mu.Unlock()

	binary.BigEndian.PutUint64(data, w.token)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(s.id), Seq: int(w.seq), Data: data}}
	if e.v6 {
		msg.Type = ipv6.ICMPTypeEchoRequest
	}
	// The kernel computes the ICMPv6 checksum; the ICMPv4 one is ours.
	b, err := msg.Marshal(nil)
	if err != nil {
		e.forget(s, w)
		return nil, time.Time{}, fmt.Errorf("icmp echo: %w", err)
	}
	var to net.Addr = &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	if !s.raw {
		to = &net.UDPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	}
	sent := time.Now()
	switch {
	case !src.IsValid():
		_, err = s.conn.WriteTo(b, to)
	case e.v6:
		_, err = s.conn.IPv6PacketConn().WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice()}, to)
	default:
		_, err = s.conn.IPv4PacketConn().WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice()}, to)
	}
	if err != nil {
		e.forget(s, w)
		return nil, time.Time{}, fmt.Errorf("icmp echo to %s: %w", dst, err)
	}
	return w, sent, nil
}

// forget unregisters w if no reply took it yet.
func (e *icmpEndpoint) forget(s *icmpSocket, w *echoWait) {
	e.mu.Lock()
	if s.waiting[w.seq] == w {
		delete(s.waiting, w.seq)
	}
	e.mu.Unlock()
}

// echoes sends up to o.Count echoes and collects what came back.
func (e *icmpEndpoint) echoes(ctx context.Context, s *icmpSocket, dst, src netip.Addr, o *ICMPOptions) (sent, received int, rttSum time.Duration, unreach *icmpError, err error) {
	data := make([]byte, o.Size)
	for i := range data[icmpMinSize:] {
		data[icmpMinSize+i] = byte(i)
	}
	timer := time.NewTimer(o.ReplyTimeout)
	defer timer.Stop()
	var last time.Time
	for i := 0; i < o.Count; i++ {
		if i > 0 && o.Interval > 0 {
			if wait := o.Interval - time.Since(last); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		w, at, serr := e.send(s, dst, src, data)
		if serr != nil {
			err = serr
			return
		}
		sent++
		last = at
		timer.Reset(o.ReplyTimeout)
		select {
		case ev := <-w.ch:
			if ev.unreach == nil {
				received++
				rttSum += ev.at.Sub(at)
			} else if received == 0 {
				unreach = ev.unreach
				return
			}
		case <-timer.C:
			e.forget(s, w)
		case <-ctx.Done():
			e.forget(s, w)
			return
		}
	}
	return
}
