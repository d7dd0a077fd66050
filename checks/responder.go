package checks

// The flowprobe responder protocol proves that the packets of a flow reach
// the machine that will run a service, before the service is installed:
// `flowprobe listen` runs a Responder on the service's ports, and the tcp
// and udp checks (responder: true, or the udp check's default payload)
// exchange a token with it.
//
// Version 1 is one line each way, ASCII, fields separated by one space:
//
//	client:    FLOWPROBE/1 HELLO <nonce> [<padding>]\n
//	responder: FLOWPROBE/1 ACK <nonce> <name> <proto>/<port> <client address>\n
//
// The nonce is 32 lowercase hex digits, fresh for every check, so an ACK
// proves a live responder answered this very probe (an echo service sends
// the HELLO back, which is not an ACK). name identifies the responder (the
// host name unless configured), proto/port is where the hello arrived and
// client address is the source the responder saw (which reveals NAT). A
// responder that cannot make sense of a line answers over TCP with
//
//	FLOWPROBE/1 ERR <text>\n
//
// and stays silent over UDP. Over UDP an answer is never longer than the
// datagram that asked for it, so a responder cannot amplify a spoofed
// request; the client pads its hello so the full ACK fits, and a shorter
// hello gets the bare "FLOWPROBE/1 ACK <nonce>". Fields after the known ones
// are ignored on both sides, so later versions can add some.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/flowprobe/flowprobe/probe"
)

const (
	responderMagic   = "FLOWPROBE/1"
	responderHelloOp = "HELLO"
	responderAckOp   = "ACK"
	responderErrOp   = "ERR"
	// maxResponderLine bounds a line either side reads.
	maxResponderLine = 256
	// udpHelloSize is the padded size of a UDP hello: room for the
	// longest full ACK (name of 64, an IPv6 address with a zone).
	udpHelloSize = 200
	maxNameLen   = 64
)

// Details keys the responder exchange sets besides probe.DetailResponder.
const (
	DetailResponderName   = "responder_name"    // the responder's identifying name
	DetailResponderSeenAs = "responder_seen_as" // our address as the responder saw it
)

// newNonce returns 32 random hex digits.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// responderHello is the hello line for nonce, padded to at least size bytes.
func responderHello(nonce string, size int) []byte {
	b := make([]byte, 0, max(size, 64))
	b = append(b, responderMagic+" "+responderHelloOp+" "...)
	b = append(b, nonce...)
	if pad := size - len(b) - 2; pad > 0 {
		b = append(b, ' ')
		for range pad {
			b = append(b, '.')
		}
	}
	return append(b, '\n')
}

// responderAck is what an ACK told us.
type responderAck struct {
	name, port, seenAs string
}

// parseResponderAck parses a responder's answer to nonce. ok is false when
// the line is not an ACK for this nonce; errText is set when it is a
// responder's ERR line.
func parseResponderAck(line []byte, nonce string) (ack responderAck, ok bool, errText string) {
	line = bytes.TrimRight(line, "\r\n")
	f := bytes.Fields(line)
	if len(f) < 2 || string(f[0]) != responderMagic {
		return ack, false, ""
	}
	switch string(f[1]) {
	case responderErrOp:
		_, text, _ := bytes.Cut(line, []byte(responderErrOp+" "))
		return ack, false, string(text)
	case responderAckOp:
	default:
		return ack, false, ""
	}
	if len(f) < 3 || string(f[2]) != nonce {
		return ack, false, ""
	}
	if len(f) > 3 {
		ack.name = string(f[3])
	}
	if len(f) > 4 {
		ack.port = string(f[4])
	}
	if len(f) > 5 {
		ack.seenAs = string(f[5])
	}
	return ack, true, ""
}

// record sets the responder details of an ACK on r.
func (a responderAck) record(r *probe.Result) {
	r.SetDetail(probe.DetailResponder, "true")
	if a.name != "" {
		r.SetDetail(DetailResponderName, a.name)
	}
	if a.seenAs != "" {
		r.SetDetail(DetailResponderSeenAs, a.seenAs)
	}
}

// readUntil reads from c into buf until done(buf[:n]) holds, buf is full,
// or a read fails. It returns the bytes read and the error that stopped it
// (nil when done or full).
func readUntil(c io.Reader, buf []byte, done func([]byte) bool) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if done(buf[:n]) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			// A reader that makes no progress; count it as the end.
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

func hasNewline(b []byte) bool { return bytes.IndexByte(b, '\n') >= 0 }

// notResponder is the error for an answer that is not the responder's.
func notResponder(got []byte, cause error) error {
	if cause != nil {
		return Fail(probe.OutcomeProtocolError, "reached something other than the flowprobe responder: %w", cause)
	}
	return Fail(probe.OutcomeProtocolError, "reached something other than the flowprobe responder: it answered %s", quoteBytes(got, 64))
}

// exchangeToken runs the client side of the protocol over a stream
// connection whose deadline is already set, and records the ACK in r.
func exchangeToken(c net.Conn, r *probe.Result) error {
	nonce := newNonce()
	if _, err := c.Write(responderHello(nonce, 0)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	var buf [maxResponderLine]byte
	n, err := readUntil(c, buf[:], hasNewline)
	got := buf[:n]
	if err != nil && !isEOF(err) {
		if n == 0 {
			return fmt.Errorf("read the responder's answer: %w", err)
		}
		return notResponder(got, nil)
	}
	if n == 0 {
		return notResponder(nil, fmt.Errorf("it closed the connection without a word: %w", err))
	}
	ack, ok, errText := parseResponderAck(got, nonce)
	if errText != "" {
		return Fail(probe.OutcomeProtocolError, "the flowprobe responder refused the hello: %s", quoteBytes([]byte(errText), 64))
	}
	if !ok {
		return notResponder(got, nil)
	}
	ack.record(r)
	return nil
}

// quoteBytes quotes at most limit bytes of b for a message.
func quoteBytes(b []byte, limit int) string {
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "..."
	}
	return strconv.Quote(string(b))
}

// ResponderConfig configures a Responder.
type ResponderConfig struct {
	// Address is the IP address to listen on; "" listens on every address
	// of both families.
	Address string
	// TCPPorts and UDPPorts are the ports to answer on; port 0 picks a
	// free port (see Responder.Listening).
	TCPPorts []int
	UDPPorts []int
	// Name identifies the responder in its answers; the host name when
	// empty. Only letters, digits, '.', '-' and '_' are kept, at most 64.
	Name string
	// ReadTimeout bounds how long a TCP connection may take to send its
	// hello (5s when zero); a silent client is closed after it.
	ReadTimeout time.Duration
	// MaxConns bounds the TCP connections served at once over all ports
	// (128 when zero); further ones are closed at once.
	MaxConns int
	// OnProbe, when set, is called once for every TCP connection and every
	// UDP datagram the responder receives, from the serving goroutines
	// (concurrently; it must not block for long).
	OnProbe func(ResponderProbe)
}

// ResponderProbe describes one probe a Responder received.
type ResponderProbe struct {
	Time     time.Time
	Protocol probe.Protocol
	Port     int            // the local port it arrived on
	Remote   netip.AddrPort // the client as seen here
	// Hello is true when the client sent a valid hello and got the token;
	// false for a bare connection (a plain tcp check) or other payload.
	Hello bool
}

// ResponderPort is one port a Responder listens on.
type ResponderPort struct {
	Protocol probe.Protocol
	Port     int
	Addr     net.Addr // the bound address
}

// ResponderSkip is a port a Responder could not listen on (most often
// because something already does).
type ResponderSkip struct {
	Protocol probe.Protocol
	Port     int
	Err      error
}

// Responder answers the flowprobe responder protocol on a set of TCP and
// UDP ports. Start one with StartResponder and stop it with Close.
type Responder struct {
	cfg       ResponderConfig
	name      string
	listening []ResponderPort
	skipped   []ResponderSkip
	sem       chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	listeners []io.Closer
	conns     map[net.Conn]struct{}
}

// StartResponder listens on every configured port and serves them in the
// background. A port it cannot listen on is skipped and reported by
// Skipped; it fails only when the configuration is wrong or no port at all
// could be opened.
func StartResponder(cfg ResponderConfig) (*Responder, error) {
	var bindAddr netip.Addr
	if cfg.Address != "" {
		a, err := netip.ParseAddr(cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("responder address: %w", err)
		}
		bindAddr = a.Unmap()
	}
	if len(cfg.TCPPorts)+len(cfg.UDPPorts) == 0 {
		return nil, errors.New("responder: no ports given")
	}
	for _, p := range slices.Concat(cfg.TCPPorts, cfg.UDPPorts) {
		if p < 0 || p > 65535 {
			return nil, fmt.Errorf("responder: port %d is outside 0..65535", p)
		}
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 128
	}
	name := cfg.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	r := &Responder{
		cfg:   cfg,
		name:  sanitizeName(name),
		sem:   make(chan struct{}, cfg.MaxConns),
		done:  make(chan struct{}),
		conns: map[net.Conn]struct{}{},
	}
	host := ""
	if bindAddr.IsValid() {
		host = bindAddr.String()
	}
	for _, p := range cfg.TCPPorts {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			r.skipped = append(r.skipped, ResponderSkip{Protocol: probe.TCP, Port: p, Err: fmt.Errorf("listen tcp/%d: %w", p, err)})
			continue
		}
		r.listeners = append(r.listeners, ln)
		r.listening = append(r.listening, ResponderPort{Protocol: probe.TCP, Port: ln.Addr().(*net.TCPAddr).Port, Addr: ln.Addr()})
		r.wg.Go(func() { r.serveTCP(ln) })
	}
	for _, p := range cfg.UDPPorts {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			r.skipped = append(r.skipped, ResponderSkip{Protocol: probe.UDP, Port: p, Err: fmt.Errorf("listen udp/%d: %w", p, err)})
			continue
		}
		uc := pc.(*net.UDPConn)
		r.listeners = append(r.listeners, uc)
		r.listening = append(r.listening, ResponderPort{Protocol: probe.UDP, Port: uc.LocalAddr().(*net.UDPAddr).Port, Addr: uc.LocalAddr()})
		pk := newUDPReplier(uc, !bindAddr.IsValid())
		r.wg.Go(func() { r.serveUDP(uc, pk) })
	}
	if len(r.listening) == 0 {
		errs := make([]error, len(r.skipped))
		for i, s := range r.skipped {
			errs[i] = s.Err
		}
		return nil, fmt.Errorf("responder: no port could be opened: %w", errors.Join(errs...))
	}
	return r, nil
}

// Name is the name the responder sends in its answers.
func (r *Responder) Name() string { return r.name }

// Listening lists the ports the responder serves, TCP first.
func (r *Responder) Listening() []ResponderPort { return slices.Clone(r.listening) }

// Skipped lists the ports it could not listen on, with the reason.
func (r *Responder) Skipped() []ResponderSkip { return slices.Clone(r.skipped) }

// Close stops listening, closes the connections being served and waits
// until every serving goroutine has returned. It is safe to call twice.
func (r *Responder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	var errs []error
	for _, l := range r.listeners {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return errors.Join(errs...)
}

func (r *Responder) serveTCP(ln net.Listener) {
	port := ln.Addr().(*net.TCPAddr).Port
	backoff := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: wait a little, as
			// net/http does, and go on unless closed meanwhile.
			if !r.pause(&backoff) {
				return
			}
			continue
		}
		backoff = 0
		select {
		case r.sem <- struct{}{}:
		default:
			// Too many connections at once: refuse this one.
			_ = c.Close()
			r.report(probe.TCP, port, c.RemoteAddr(), false)
			continue
		}
		if !r.track(c) {
			_ = c.Close()
			<-r.sem
			return
		}
		r.wg.Go(func() {
			defer func() { <-r.sem }()
			hello := r.handleTCP(c, port)
			r.untrack(c)
			_ = c.Close()
			r.report(probe.TCP, port, c.RemoteAddr(), hello)
		})
	}
}

// pause waits after a failed accept or read, doubling *backoff from 5ms up
// to 1s; it returns false when the responder was closed meanwhile.
func (r *Responder) pause(backoff *time.Duration) bool {
	*backoff = min(max(2**backoff, 5*time.Millisecond), time.Second)
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-r.done:
		return false
	case <-t.C:
		return true
	}
}

func (r *Responder) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Responder) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// handleTCP reads one line within the read timeout and answers it.
func (r *Responder) handleTCP(c net.Conn, port int) (hello bool) {
	_ = c.SetDeadline(time.Now().Add(r.cfg.ReadTimeout))
	var buf [maxResponderLine]byte
	n, err := readUntil(c, buf[:], hasNewline)
	if n == 0 || (err != nil && !isEOF(err) && !hasNewline(buf[:n])) {
		return false // a bare connect, or silence until the deadline
	}
	nonce, ok := parseHello(buf[:n])
	if !ok {
		_, _ = c.Write([]byte(responderMagic + " " + responderErrOp + " expected " + responderMagic + " " + responderHelloOp + " <nonce>\n"))
		return false
	}
	_, err = c.Write(r.ack(nonce, probe.TCP, port, c.RemoteAddr(), 0))
	return err == nil
}

// parseHello returns the nonce of a valid hello line.
func parseHello(line []byte) (string, bool) {
	f := bytes.Fields(bytes.TrimRight(line, "\r\n"))
	if len(f) < 3 || string(f[0]) != responderMagic || string(f[1]) != responderHelloOp {
		return "", false
	}
	nonce := f[2]
	if len(nonce) < 16 || len(nonce) > 64 {
		return "", false
	}
	for _, ch := range nonce {
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f') {
			return "", false
		}
	}
	return string(nonce), true
}

// ack builds the answer to nonce; limit > 0 caps its length (UDP), falling
// back to the bare ACK.
func (r *Responder) ack(nonce string, proto probe.Protocol, port int, remote net.Addr, limit int) []byte {
	b := make([]byte, 0, 160)
	b = append(b, responderMagic+" "+responderAckOp+" "...)
	b = append(b, nonce...)
	bare := len(b)
	b = append(b, ' ')
	b = append(b, r.name...)
	b = append(b, ' ')
	b = append(b, proto...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, ' ')
	b = append(b, addrPortOf(remote).String()...)
	if limit > 0 && len(b)+1 > limit {
		b = b[:bare]
	}
	return append(b, '\n')
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func (r *Responder) report(proto probe.Protocol, port int, remote net.Addr, hello bool) {
	if r.cfg.OnProbe == nil {
		return
	}
	r.cfg.OnProbe(ResponderProbe{Time: time.Now(), Protocol: proto, Port: port, Remote: addrPortOf(remote), Hello: hello})
}

func (r *Responder) serveUDP(c *net.UDPConn, pk udpReplier) {
	port := c.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, 2048)
	backoff := time.Duration(0)
	for {
		n, local, remote, err := pk.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors from an earlier answer surface here on some
			// systems; they concern that client only. Wait a little so a
			// persistent error cannot spin.
			if !r.pause(&backoff) {
				return
			}
			continue
		}
		backoff = 0
		hello := false
		if nonce, ok := parseHello(buf[:n]); ok {
			_ = c.SetWriteDeadline(time.Now().Add(r.cfg.ReadTimeout))
			hello = pk.write(r.ack(nonce, probe.UDP, port, net.UDPAddrFromAddrPort(remote), n), local, remote) == nil
		}
		r.report(probe.UDP, port, net.UDPAddrFromAddrPort(remote), hello)
	}
}

// udpReplier reads datagrams and answers them from the address they were
// sent to. On a socket bound to every address the kernel would otherwise
// pick the answer's source by routing, and a client's connected socket
// drops an answer from an address it did not send to.
type udpReplier interface {
	read(buf []byte) (n int, local netip.Addr, remote netip.AddrPort, err error)
	write(b []byte, local netip.Addr, remote netip.AddrPort) error
}

func newUDPReplier(c *net.UDPConn, wildcard bool) udpReplier {
	if wildcard {
		p6 := ipv6.NewPacketConn(c)
		if p6.SetControlMessage(ipv6.FlagDst, true) == nil {
			return pktinfo6{c: c, p: p6, p4: ipv4.NewPacketConn(c)}
		}
		p4 := ipv4.NewPacketConn(c)
		if p4.SetControlMessage(ipv4.FlagDst, true) == nil {
			return pktinfo4{c: c, p: p4}
		}
	}
	return plainUDP{c}
}

type plainUDP struct{ c *net.UDPConn }

func (u plainUDP) read(buf []byte) (int, netip.Addr, netip.AddrPort, error) {
	n, remote, err := u.c.ReadFromUDPAddrPort(buf)
	return n, netip.Addr{}, remote, err
}

func (u plainUDP) write(b []byte, _ netip.Addr, remote netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, remote)
	return err
}

// pktinfo6 serves a dual-stack socket. IPv4 clients arrive with a mapped
// destination address; their answers carry an IPv4 IP_PKTINFO, which
// Linux honours on an IPv6 socket sending to a mapped address (an IPv6
// pktinfo with a mapped source is ignored).
type pktinfo6 struct {
	c  *net.UDPConn
	p  *ipv6.PacketConn
	p4 *ipv4.PacketConn
}

func (u pktinfo6) read(buf []byte) (int, netip.Addr, netip.AddrPort, error) {
	n, cm, src, err := u.p.ReadFrom(buf)
	if err != nil {
		return n, netip.Addr{}, netip.AddrPort{}, err
	}
	var local netip.Addr
	if cm != nil {
		local, _ = netip.AddrFromSlice(cm.Dst)
	}
	return n, local, addrPortOf(src), nil
}

func (u pktinfo6) write(b []byte, local netip.Addr, remote netip.AddrPort) error {
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(mapTo6(remote.Addr()), remote.Port()))
	if local.Unmap().Is4() {
		_, err := u.p4.WriteTo(b, &ipv4.ControlMessage{Src: net.IP(local.Unmap().AsSlice())}, dst)
		return err
	}
	var cm *ipv6.ControlMessage
	if local.IsValid() {
		cm = &ipv6.ControlMessage{Src: net.IP(local.AsSlice())}
	}
	_, err := u.p.WriteTo(b, cm, dst)
	return err
}

func mapTo6(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.AddrFrom16(a.As16())
	}
	return a
}

type pktinfo4 struct {
	c *net.UDPConn
	p *ipv4.PacketConn
}

func (u pktinfo4) read(buf []byte) (int, netip.Addr, netip.AddrPort, error) {
	n, cm, src, err := u.p.ReadFrom(buf)
	if err != nil {
		return n, netip.Addr{}, netip.AddrPort{}, err
	}
	var local netip.Addr
	if cm != nil {
		local, _ = netip.AddrFromSlice(cm.Dst)
	}
	return n, local.Unmap(), addrPortOf(src), nil
}

func (u pktinfo4) write(b []byte, local netip.Addr, remote netip.AddrPort) error {
	var cm *ipv4.ControlMessage
	if local.IsValid() {
		cm = &ipv4.ControlMessage{Src: net.IP(local.AsSlice())}
	}
	_, err := u.p.WriteTo(b, cm, net.UDPAddrFromAddrPort(remote))
	return err
}

// sanitizeName keeps what may go into one field of an answer.
func sanitizeName(s string) string {
	b := make([]byte, 0, min(len(s), maxNameLen))
	for i := 0; i < len(s) && len(b) < maxNameLen; i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '-' || ch == '_' {
			b = append(b, ch)
		}
	}
	if len(b) == 0 {
		return "flowprobe"
	}
	return string(b)
}
