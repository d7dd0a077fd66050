package checks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// resolve turns t.Host into one address of the wanted family, timing the
// resolve phase (zero for a literal address).
func resolve(ctx context.Context, t *probe.Target, r *probe.Result) (netip.Addr, error) {
	if a, err := netip.ParseAddr(t.Host); err == nil {
		if !familyMatches(a, t.IPFamily) {
			return netip.Addr{}, Fail(probe.OutcomeDNSError, "address %s is not of family %s", a, t.IPFamily)
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
		if !familyMatches(a, t.IPFamily) {
			continue
		}
		if t.IPFamily == "" && a.Is6() {
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
	return netip.Addr{}, Fail(probe.OutcomeDNSError, "resolve %s: no %s address", t.Host, familyName(t.IPFamily))
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
	if f == "" {
		return "IP"
	}
	return map[string]string{"ip4": "IPv4", "ip6": "IPv6"}[f]
}

// dialer returns a net.Dialer bound to the target's source address.
func dialer(t *probe.Target, network string) (*net.Dialer, error) {
	d := &net.Dialer{}
	if t.SourceAddress == "" {
		return d, nil
	}
	src, err := netip.ParseAddr(t.SourceAddress)
	if err != nil {
		return nil, fmt.Errorf("source address %q: %w", t.SourceAddress, err)
	}
	switch network {
	case "udp":
		d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
	default:
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
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
	start := time.Now()
	conn, err := d.DialContext(ctx, network, net.JoinHostPort(addr.String(), strconv.Itoa(port)))
	r.Phases[probe.PhaseConnect] = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return conn, nil
}

// stopOnDone closes c as soon as ctx is done, so a blocked read or write
// returns at the deadline even where a library resets the conn's deadline.
// Call the returned function to release the watcher.
func stopOnDone(ctx context.Context, c net.Conn) (release func() bool) {
	return context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
}
