package checks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
			return netip.Addr{}, Fail(probe.OutcomeDNSError, "address %s is not of family %s", a, familyName(fam))
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
	return netip.Addr{}, Fail(probe.OutcomeDNSError, "resolve %s: no %s address", t.Host, familyName(fam))
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
// local port).
func dialer(t *probe.Target, network string) (*net.Dialer, error) {
	d := &net.Dialer{}
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
	start := time.Now()
	conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(addr, uint16(port)).String())
	r.Phases[probe.PhaseConnect] = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, nil
}

// stopOnDone makes every blocked read or write on c return as soon as ctx
// is done (by moving c's deadline into the past), even where a library
// resets the conn's deadline. Call the returned function to release the
// watcher.
func stopOnDone(ctx context.Context, c net.Conn) (release func() bool) {
	return context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
}
