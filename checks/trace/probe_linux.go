package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/flowprobe/flowprobe/probe"
)

// methodRecvErr and methodRaw name how replies were read.
const (
	methodRecvErr = "socket error queue (IP_RECVERR)"
	methodRaw     = "raw ICMP socket"
)

// newProber opens what the probes of proto need. For icmp it is a raw
// socket: size is the whole IP packet (0 for the default 84/104 bytes) and
// df sets Don't Fragment.
func (tr *Tracer) newProber(req Request, proto probe.Protocol, size int) (prober, error) {
	switch proto {
	case probe.TCP:
		return &sockProber{req: req, typ: unix.SOCK_STREAM}, nil
	case probe.UDP:
		return &sockProber{req: req, typ: unix.SOCK_DGRAM}, nil
	}
	if tr.NoRaw {
		return nil, ErrPermission
	}
	return newEchoProber(req, size)
}

// sockProber sends each probe from a new TCP or UDP socket with the TTL
// set and IP_RECVERR on, so the ICMP message a router sends back about
// that very packet lands in the socket's error queue.
type sockProber struct {
	req Request
	typ int
}

func (p *sockProber) method() string { return methodRecvErr }
func (p *sockProber) close()         {}

func (p *sockProber) probe(ctx context.Context, ttl, _ int) (Hop, error) {
	v6 := p.req.Destination.Is6()
	fam := unix.AF_INET
	if v6 {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, p.typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Hop{}, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	opts := [][3]int{{unix.IPPROTO_IP, unix.IP_TTL, ttl}, {unix.IPPROTO_IP, unix.IP_RECVERR, 1}}
	if v6 {
		opts = [][3]int{{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl}, {unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1}}
	}
	if p.typ == unix.SOCK_STREAM {
		// One SYN per probe: the kernel would retransmit only after its
		// initial RTO of 1s, and never more than once.
		opts = append(opts, [3]int{unix.IPPROTO_TCP, unix.TCP_SYNCNT, 1})
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], o[2]); err != nil {
			return Hop{}, fmt.Errorf("setsockopt %d/%d: %w", o[0], o[1], err)
		}
	}
	if p.req.Source.IsValid() {
		if err := unix.Bind(fd, sockaddr(p.req.Source, 0)); err != nil {
			return Hop{}, fmt.Errorf("bind %s: %w", p.req.Source, err)
		}
	}
	start := time.Now()
	err = unix.Connect(fd, sockaddr(p.req.Destination, p.req.Port))
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return Hop{}, fmt.Errorf("connect: %w", err)
	}
	events := int16(unix.POLLOUT)
	if p.typ == unix.SOCK_DGRAM {
		if _, err := unix.Write(fd, p.req.Payload); err != nil {
			return Hop{}, fmt.Errorf("send: %w", err)
		}
		events = unix.POLLIN
	}
	rev, err := pollFD(ctx, fd, events, p.req.HopTimeout)
	rtt := time.Since(start)
	if err != nil || rev == 0 {
		return Hop{Reply: ReplySilent}, err
	}
	if h, ok := readErrQueue(fd); ok {
		h.RTT = rtt
		return h, nil
	}
	h := Hop{Addr: p.req.Destination, RTT: rtt}
	if p.typ == unix.SOCK_DGRAM {
		h.Reply = ReplyUDP
		return h, nil
	}
	switch soErr, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); syscall.Errno(soErr) {
	case 0:
		h.Reply = ReplySynAck
	case unix.ECONNREFUSED:
		h.Reply = ReplyReset
	default:
		return Hop{}, fmt.Errorf("connect: %w", syscall.Errno(soErr))
	}
	return h, nil
}

// pollFD waits until fd has one of events (or an error) or timeout
// passes, in slices so that ctx can end the wait.
func pollFD(ctx context.Context, fd int, events int16, timeout time.Duration) (int16, error) {
	end := time.Now().Add(timeout)
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		left := time.Until(end)
		if left <= 0 {
			return 0, nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(fds, int(min(left, 100*time.Millisecond)/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("poll: %w", err)
		}
		if n > 0 {
			return fds[0].Revents, nil
		}
	}
}

// readErrQueue reads one ICMP error from fd's error queue.
func readErrQueue(fd int) (Hop, bool) {
	buf := make([]byte, 512)
	oob := make([]byte, 512)
	_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err != nil {
		return Hop{}, false
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return Hop{}, false
	}
	for _, m := range msgs {
		if (m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR) ||
			(m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
			return parseExtendedErr(m.Data)
		}
	}
	return Hop{}, false
}

// parseExtendedErr decodes a struct sock_extended_err and the offender's
// address that follows it.
func parseExtendedErr(b []byte) (Hop, bool) {
	if len(b) < 16 {
		return Hop{}, false
	}
	origin, typ, code := b[4], int(b[5]), int(b[6])
	info := int(binary.NativeEndian.Uint32(b[8:12]))
	var h Hop
	off := b[16:]
	switch {
	case origin == unix.SO_EE_ORIGIN_ICMP && len(off) >= 8 && binary.NativeEndian.Uint16(off) == unix.AF_INET:
		h.Addr = netip.AddrFrom4([4]byte(off[4:8]))
		h.Reply, h.Code = icmp4Kind(typ, code)
	case origin == unix.SO_EE_ORIGIN_ICMP6 && len(off) >= 24 && binary.NativeEndian.Uint16(off) == unix.AF_INET6:
		h.Addr = netip.AddrFrom16([16]byte(off[8:24]))
		h.Reply, h.Code = icmp6Kind(typ, code)
	default:
		return Hop{}, false
	}
	if h.Code == codeFragNeeded {
		h.MTU = info
	}
	return h, true
}

const codeFragNeeded = "frag-needed"

// icmp4Kind names an ICMPv4 error.
func icmp4Kind(typ, code int) (reply, name string) {
	switch typ {
	case 11:
		return ReplyTimeExceeded, ""
	case 3:
		names := map[int]string{0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable",
			3: "port-unreachable", 4: codeFragNeeded, 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}
		if n, ok := names[code]; ok {
			return ReplyUnreachable, n
		}
		return ReplyUnreachable, fmt.Sprintf("code-%d", code)
	}
	return ReplyUnreachable, fmt.Sprintf("type-%d-code-%d", typ, code)
}

// icmp6Kind names an ICMPv6 error.
func icmp6Kind(typ, code int) (reply, name string) {
	switch typ {
	case 3:
		return ReplyTimeExceeded, ""
	case 2:
		return ReplyUnreachable, codeFragNeeded
	case 1:
		names := map[int]string{0: "net-unreachable", 1: "admin-prohibited", 3: "host-unreachable",
			4: "port-unreachable", 5: "source-policy", 6: "reject-route"}
		if n, ok := names[code]; ok {
			return ReplyUnreachable, n
		}
		return ReplyUnreachable, fmt.Sprintf("code-%d", code)
	}
	return ReplyUnreachable, fmt.Sprintf("type-%d-code-%d", typ, code)
}

func sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: port, Addr: a.As16()}
}

// echoProber sends ICMP echoes from one raw socket and matches the replies
// and the quoted echo in ICMP errors by ID and sequence number.
type echoProber struct {
	req  Request
	conn *net.IPConn
	v6   bool
	id   uint16
	seq  uint16
	size int // whole IP packet
}

func newEchoProber(req Request, size int) (*echoProber, error) {
	v6 := req.Destination.Is6()
	network, laddr := "ip4:icmp", "0.0.0.0"
	if v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	if req.Source.IsValid() {
		laddr = req.Source.String()
	}
	pc, err := net.ListenPacket(network, laddr)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w (%v)", ErrPermission, err)
		}
		return nil, fmt.Errorf("listen %s: %w", network, err)
	}
	p := &echoProber{req: req, conn: pc.(*net.IPConn), v6: v6, id: uint16(rand.Uint32()), size: size}
	if p.size == 0 {
		p.size = p.header() + 8 + 56
	}
	return p, nil
}

func (p *echoProber) method() string { return methodRaw }
func (p *echoProber) close()         { _ = p.conn.Close() }

func (p *echoProber) header() int {
	if p.v6 {
		return 40
	}
	return 20
}

// setDF sets Don't Fragment (and stops the kernel from fragmenting
// locally), so that a router must drop a packet too big for its next link.
func (p *echoProber) setDF() error {
	rc, err := p.conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if p.v6 {
			serr = errors.Join(unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1))
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
	})
	return errors.Join(err, serr)
}

func (p *echoProber) probe(ctx context.Context, ttl, _ int) (Hop, error) {
	var err error
	if p.v6 {
		err = ipv6.NewPacketConn(p.conn).SetHopLimit(ttl)
	} else {
		err = ipv4.NewPacketConn(p.conn).SetTTL(ttl)
	}
	if err != nil {
		return Hop{}, fmt.Errorf("set TTL: %w", err)
	}
	p.seq++
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if p.v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	data := make([]byte, max(p.size-p.header()-8, 0))
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(p.id), Seq: int(p.seq), Data: data}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return Hop{}, fmt.Errorf("echo: %w", err)
	}
	start := time.Now()
	if _, err := p.conn.WriteTo(b, &net.IPAddr{IP: p.req.Destination.AsSlice()}); err != nil {
		if errors.Is(err, unix.EMSGSIZE) {
			return Hop{Reply: ReplyUnreachable, Code: codeFragNeeded, Addr: p.req.Source}, nil
		}
		return Hop{}, fmt.Errorf("send echo: %w", err)
	}
	end := start.Add(p.req.HopTimeout)
	stop := context.AfterFunc(ctx, func() { _ = p.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 1500)
	for i := 0; i < 1000; i++ { // bounded: other ICMP traffic on the host is skipped
		_ = p.conn.SetReadDeadline(end)
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return Hop{}, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return Hop{Reply: ReplySilent}, nil
			}
			return Hop{}, fmt.Errorf("read: %w", err)
		}
		peer, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		if h, ok := p.match(buf[:n], peer.Unmap()); ok {
			h.RTT = time.Since(start)
			return h, nil
		}
	}
	return Hop{Reply: ReplySilent}, nil
}

// match reports whether an ICMP message b from peer answers the echo just
// sent, and what it says.
func (p *echoProber) match(b []byte, peer netip.Addr) (Hop, bool) {
	proto := 1
	if p.v6 {
		proto = 58
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return Hop{}, false
	}
	var quoted []byte
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if (m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) &&
			body.ID == int(p.id) && body.Seq == int(p.seq) && peer == p.req.Destination {
			return Hop{Addr: peer, Reply: ReplyEchoReply}, true
		}
		return Hop{}, false
	case *icmp.TimeExceeded:
		quoted = body.Data
	case *icmp.DstUnreach:
		quoted = body.Data
	case *icmp.PacketTooBig:
		quoted = body.Data
	default:
		return Hop{}, false
	}
	if !p.quotes(quoted) {
		return Hop{}, false
	}
	h := Hop{Addr: peer}
	if p.v6 {
		h.Reply, h.Code = icmp6Kind(int(b[0]), int(b[1]))
		if h.Code == codeFragNeeded {
			h.MTU = int(binary.BigEndian.Uint32(b[4:8]))
		}
	} else {
		h.Reply, h.Code = icmp4Kind(int(b[0]), int(b[1]))
		if h.Code == codeFragNeeded {
			h.MTU = int(binary.BigEndian.Uint16(b[6:8]))
		}
	}
	return h, true
}

// quotes reports whether q (the IP header and first bytes an ICMP error
// quotes) is the echo just sent.
func (p *echoProber) quotes(q []byte) bool {
	var dst netip.Addr
	var rest []byte
	if p.v6 {
		if len(q) < 48 || q[0]>>4 != 6 || q[6] != 58 {
			return false
		}
		dst, rest = netip.AddrFrom16([16]byte(q[24:40])), q[40:]
	} else {
		ihl := int(q[0]&0x0f) * 4
		if len(q) < ihl+8 || q[0]>>4 != 4 || q[9] != 1 {
			return false
		}
		dst, rest = netip.AddrFrom4([4]byte(q[16:20])), q[ihl:]
	}
	return dst.Unmap() == p.req.Destination && (rest[0] == 8 || rest[0] == 128) &&
		binary.BigEndian.Uint16(rest[4:6]) == p.id && binary.BigEndian.Uint16(rest[6:8]) == p.seq
}

// localMTU is the MTU of the interface that packets to dst leave from.
func localMTU(src, dst netip.Addr) (int, error) {
	d := net.Dialer{}
	if src.IsValid() {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := d.Dial("udp", netip.AddrPortFrom(dst, 9).String())
	if err != nil {
		return 0, fmt.Errorf("route to %s: %w", dst, err)
	}
	local := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	_ = c.Close()
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("interfaces: %w", err)
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, _ := netip.AddrFromSlice(n.IP); ip.Unmap() == local {
					return ifc.MTU, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no interface holds %s", local)
}
