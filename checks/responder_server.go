package checks

// The responder's listeners: the server side of the protocol described in
// responder.go, as `flowprobe listen` runs it.

import (
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

	"github.com/flowprobe/flowprobe/probe"
)

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

// handleTCP reads one line within the read timeout and answers it. Bytes
// that cannot begin a hello (another protocol's client: TLS, LDAP, HTTP...)
// get the ERR line at once, so that client learns it reached a responder.
func (r *Responder) handleTCP(c net.Conn, port int) (hello bool) {
	_ = c.SetDeadline(time.Now().Add(r.cfg.ReadTimeout))
	var buf [maxResponderLine]byte
	n, err := readUntil(c, buf[:], func(b []byte) bool { return hasNewline(b) || !maybeHello(b) })
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

// serveUDP is serveTCP's loop for datagrams; the error handling of the two
// loops has the same shape on purpose (an accept and a read fail alike).
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
