package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// family is the address family a target may use: t.IPFamily when set, else
// the family of t.SourceAddress when that is set (a socket bound to an IPv4
// address cannot reach an IPv6 one), else "" for either.
func family(t *probe.Target) string {
	if t.IPFamily != "" || t.SourceAddress == "" {
		return t.IPFamily
	}
	if src, err := netip.ParseAddr(t.SourceAddress); err == nil {
		if src.Unmap().Is4() {
			return "ip4"
		}
		return "ip6"
	}
	return ""
}

// resolve turns t.Host into one address of the wanted family, timing the
// resolve phase. A literal address is not resolved and leaves the phase at
// zero.
func resolve(ctx context.Context, t *probe.Target, r *probe.Result) (netip.Addr, error) {
	fam := family(t)
	if a, err := netip.ParseAddr(t.Host); err == nil {
		if !familyMatches(a, fam) {
			// This machine cannot reach the address with the family it
			// must use (ip_family, or the source address's).
			return netip.Addr{}, localFail(probe.ReasonFamilyMismatch, "address %s is not of family %s%s", a, familyName(fam), familySource(t))
		}
		return a.Unmap(), nil
	}
	start := time.Now()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", t.Host)
	r.Phases[probe.PhaseResolve] = time.Since(start)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", t.Host, err)
	}
	var fallback netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if !familyMatches(a, fam) {
			continue
		}
		if fam == "" && a.Is6() {
			// Either family will do; prefer IPv4 like the vendors' tables do.
			if !fallback.IsValid() {
				fallback = a
			}
			continue
		}
		return a, nil
	}
	if fallback.IsValid() {
		return fallback, nil
	}
	if t.IPFamily == "" && len(addrs) > 0 {
		// The name resolves, but only to the other family than the
		// source address's: no DNS fault, this machine cannot use it.
		return netip.Addr{}, localFail(probe.ReasonFamilyMismatch, "resolve %s: no %s address%s", t.Host, familyName(fam), familySource(t))
	}
	return netip.Addr{}, Fail(probe.OutcomeDNSError, "resolve %s: no %s address", t.Host, familyName(fam))
}

// familySource names where the wanted family came from, for an error.
func familySource(t *probe.Target) string {
	if t.IPFamily == "" && t.SourceAddress != "" {
		return " (the family of source address " + t.SourceAddress + ")"
	}
	return ""
}

func familyMatches(a netip.Addr, family string) bool {
	switch family {
	case "ip4":
		return a.Unmap().Is4()
	case "ip6":
		return a.Is6() && !a.Is4In6()
	}
	return true
}

func familyName(f string) string {
	switch f {
	case "ip4":
		return "IPv4"
	case "ip6":
		return "IPv6"
	}
	return "IP"
}

// dialer returns a net.Dialer bound to the target's source address (any
// local port). TCP keep-alive stays off: a check's connection lives for
// one timeout at most, far below the first keep-alive probe, and turning
// it on costs four setsockopt calls per connect.
func dialer(t *probe.Target, network string) (*net.Dialer, error) {
	d := &net.Dialer{KeepAlive: -1}
	if t.SourceAddress == "" {
		return d, nil
	}
	src, err := netip.ParseAddr(t.SourceAddress)
	if err != nil {
		return nil, fmt.Errorf("source address %q: %w", t.SourceAddress, err)
	}
	ap := netip.AddrPortFrom(src.Unmap(), 0)
	switch network {
	case "udp", "udp4", "udp6":
		d.LocalAddr = net.UDPAddrFromAddrPort(ap)
	default:
		d.LocalAddr = net.TCPAddrFromAddrPort(ap)
	}
	return d, nil
}

// dial resolves the target and connects to it over network ("tcp" or
// "udp", the latter a connected socket so ICMP errors surface), timing the
// resolve and connect phases. The connection's deadline is the context's.
func dial(ctx context.Context, t *probe.Target, network string, r *probe.Result) (net.Conn, error) {
	return dialPort(ctx, t, network, t.Port, r)
}

// dialPort is dial to another port of the target's host.
func dialPort(ctx context.Context, t *probe.Target, network string, port int, r *probe.Result) (net.Conn, error) {
	addr, err := resolve(ctx, t, r)
	if err != nil {
		return nil, err
	}
	d, err := dialer(t, network)
	if err != nil {
		return nil, err
	}
	// The resolved address fixes the family, so the socket is of that
	// family only (tcp4/tcp6, udp4/udp6).
	if network == "tcp" || network == "udp" {
		if addr.Is4() {
			network += "4"
		} else {
			network += "6"
		}
	}
	if la, ok := d.LocalAddr.(interface{ AddrPort() netip.AddrPort }); ok && la.AddrPort().Addr().Is4() != addr.Is4() {
		return nil, localFail(probe.ReasonFamilyMismatch, "source address %s cannot reach %s: different address families", t.SourceAddress, addr)
	}
	start := time.Now()
	conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(addr, uint16(port)).String())
	r.Phases[probe.PhaseConnect] = time.Since(start)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			// A RST to the SYN is ECONNREFUSED; a reset reported by
			// connect means the handshake completed and the peer reset
			// the connection before connect returned: it was connected.
			r.Connected = true
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if network == "udp4" || network == "udp6" {
		// A UDP "connect" sends nothing: the phase moves on with the
		// first answer (see answered).
		return conn, nil
	}
	r.Connected = true
	return &peerConn{Conn: conn, st: peerStateOf(r)}, nil
}

// answered records that a UDP peer answered: from here on the transport
// is connected, and a path outcome no longer applies.
func answered(r *probe.Result) { r.Connected = true }

// peerState is what the connections of one check run learned about the
// peer, possibly on other goroutines than the check's (an HTTP transport,
// an LDAP reader).
type peerState struct {
	responder atomic.Bool // the peer spoke the flowprobe responder protocol
}

// peerStates maps a check run's result to its peerState from the first
// dial to finish, which records what was learned in the result.
var peerStates sync.Map // *probe.Result → *peerState

func peerStateOf(r *probe.Result) *peerState {
	st, _ := peerStates.LoadOrStore(r, &peerState{})
	return st.(*peerState)
}

// notePeer records in r what its connections learned about the peer and
// forgets the run.
func notePeer(r *probe.Result) {
	v, ok := peerStates.LoadAndDelete(r)
	if ok && v.(*peerState).responder.Load() {
		r.SetDetail(probe.DetailResponder, "true")
	}
}

// peerConn is a TCP connection of a check. It looks at the first bytes the
// peer sends: a flowprobe responder answers anything but its hello with
// "FLOWPROBE/1 ERR", so an application-aware check that reached a
// responder can say so.
type peerConn struct {
	net.Conn
	st     *peerState
	looked atomic.Bool
}

var responderPrefix = []byte(responderMagic + " ")

func (c *peerConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.looked.Swap(true) && bytes.HasPrefix(b[:n], responderPrefix) {
		c.st.responder.Store(true)
	}
	return n, err
}

// stopOnDone makes every blocked read or write on c return as soon as ctx
// is done (by moving c's deadline into the past), even where a library
// resets the conn's deadline. Call the returned function to release the
// watcher.
func stopOnDone(ctx context.Context, c net.Conn) (release func() bool) {
	return context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
}
