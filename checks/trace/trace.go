// Package trace finds where a failing flow is blocked. It sends the flow's
// own packet — a TCP SYN to its port, its UDP datagram, or an ICMP echo —
// with an increasing TTL (hop limit for IPv6), reads the ICMP Time
// Exceeded and Destination Unreachable messages the routers send back, and
// names the place in a verdict: the last hop that answered, the hop that
// rejects, or a reset that comes back before the destination.
//
// Replies are read from the sending socket's error queue (IP_RECVERR,
// IPV6_RECVERR) for TCP and UDP, which needs no privilege and ties every
// ICMP message to the probe that caused it, and from a raw ICMP socket for
// echoes, matching the quoted ID and sequence number. When the flow does
// not reach its destination, an ICMP echo trace of the same path is run for
// comparison where raw sockets are allowed.
//
// A trace is bounded: at most MaxHops hops, one packet per hop per try, at
// most two tries, a run of silent hops ends it, and a Tracer spaces the
// probes to one destination. It sends no more per hop than the flow itself
// would. The package never imports the scheduler or the exporter.
package trace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Defaults and bounds of a Request.
const (
	DefaultMaxHops    = 30
	MaxMaxHops        = 64
	DefaultHopTimeout = time.Second
	DefaultTries      = 2
	MaxTries          = 2
	// SilentRun is the number of silent hops in a row that ends a trace:
	// past a dropping filter every hop is silent, so going on to MaxHops
	// would only add time.
	SilentRun = 3
	// DefaultGap is the least time between two probes to one destination.
	DefaultGap = 20 * time.Millisecond
)

// ErrPermission is wrapped by errors that a raw socket was refused; the
// message names the remedy.
var ErrPermission = errors.New("no permission for a raw ICMP socket: run as root, or grant CAP_NET_RAW (setcap cap_net_raw+ep flowprobe, or AmbientCapabilities=CAP_NET_RAW in the systemd unit)")

// ErrUnsupported is returned on systems where tracing is not implemented.
var ErrUnsupported = errors.New("path tracing is only implemented on Linux")

// Request describes one trace.
type Request struct {
	// Protocol is the flow's transport: tcp, udp or icmp.
	Protocol probe.Protocol
	// Destination and Port (0 for icmp) are where the flow goes.
	Destination netip.Addr
	Port        int
	// Source, when valid, is the local address probes leave from.
	Source netip.Addr
	// Payload is the UDP datagram to send (the flow's own; may be empty).
	Payload []byte
	// MaxHops bounds the TTL (default 30, at most 64).
	MaxHops int
	// HopTimeout is how long one probe waits for its answer (default 1s).
	HopTimeout time.Duration
	// Tries is how often a silent hop is probed (1 or 2, default 2).
	Tries int
	// Compare runs an ICMP echo trace as well when the flow does not
	// reach its destination (needs a raw socket; skipped with a note when
	// there is none).
	Compare bool
	// MTU runs a path MTU probe as well (needs a raw socket).
	MTU bool
	// AfterConnect, when the trace follows a check that connected and then
	// failed, is that check's outcome ("service_timeout",
	// "protocol_error"): a SYN-ACK then means a hung service, not a
	// blocked path.
	AfterConnect string
}

func (r *Request) defaults() error {
	if r.MaxHops == 0 {
		r.MaxHops = DefaultMaxHops
	}
	if r.HopTimeout == 0 {
		r.HopTimeout = DefaultHopTimeout
	}
	if r.Tries == 0 {
		r.Tries = DefaultTries
	}
	var errs []error
	if !r.Destination.IsValid() {
		errs = append(errs, errors.New("no destination address"))
	}
	if r.MaxHops < 1 || r.MaxHops > MaxMaxHops {
		errs = append(errs, fmt.Errorf("max hops %d: want 1 to %d", r.MaxHops, MaxMaxHops))
	}
	if r.HopTimeout < 0 {
		errs = append(errs, fmt.Errorf("hop timeout %s is negative", r.HopTimeout))
	}
	if r.Tries < 1 || r.Tries > MaxTries {
		errs = append(errs, fmt.Errorf("tries %d: want 1 to %d", r.Tries, MaxTries))
	}
	switch r.Protocol {
	case probe.TCP, probe.UDP:
		if r.Port < 1 || r.Port > 65535 {
			errs = append(errs, fmt.Errorf("port %d: want 1 to 65535 for %s", r.Port, r.Protocol))
		}
	case probe.ICMP:
	default:
		errs = append(errs, fmt.Errorf("protocol %q: want tcp, udp or icmp", r.Protocol))
	}
	if r.Source.IsValid() && r.Source.Unmap().Is4() != r.Destination.Unmap().Is4() {
		errs = append(errs, fmt.Errorf("source %s and destination %s are of different families", r.Source, r.Destination))
	}
	r.Destination, r.Source = r.Destination.Unmap(), r.Source.Unmap()
	return errors.Join(errs...)
}

// Bound is the longest a trace of r can take: every hop probed Tries
// times, each waiting the full HopTimeout (the comparison and MTU probes
// each add at most as much again).
func (r Request) Bound() time.Duration {
	_ = r.defaults()
	return time.Duration(r.MaxHops*r.Tries) * r.HopTimeout
}

// Reply kinds, as a Hop reports them.
const (
	ReplySilent       = "silent"
	ReplyTimeExceeded = "time-exceeded"
	ReplyUnreachable  = "unreachable" // Destination Unreachable; Code names which
	ReplySynAck       = "syn-ack"
	ReplyReset        = "reset"
	ReplyEchoReply    = "echo-reply"
	ReplyUDP          = "udp-reply"
)

// Hop is what came back for the probes with one TTL.
type Hop struct {
	TTL int `json:"ttl"`
	// Addr is the address that answered; zero when silent. For a SYN-ACK
	// or a reset it is the address the segment claims to come from.
	Addr  netip.Addr    `json:"address,omitzero"`
	Reply string        `json:"reply"`
	Code  string        `json:"code,omitempty"` // for unreachable: admin-prohibited, port-unreachable, ...
	MTU   int           `json:"mtu,omitempty"`  // next-hop MTU of a fragmentation-needed
	RTT   time.Duration `json:"rtt_ns,omitempty"`
	Tries int           `json:"tries"`
}

// Answered reports whether anything came back.
func (h Hop) Answered() bool { return h.Reply != "" && h.Reply != ReplySilent }

// final reports whether the hop ends the trace: the destination or a
// rejecting device answered.
func (h Hop) final() bool { return h.Answered() && h.Reply != ReplyTimeExceeded }

// Path is the hops of one trace with one kind of packet.
type Path struct {
	// Probe names the packet: "tcp/389", "udp/123", "icmp echo".
	Probe string `json:"probe"`
	// Method is how replies were read.
	Method string `json:"method"`
	Hops   []Hop  `json:"hops"`
	// Reached is true when the destination itself answered.
	Reached bool `json:"reached"`
}

// last returns the last hop that answered, or a zero Hop.
func (p *Path) last() Hop {
	for i := len(p.Hops) - 1; i >= 0; i-- {
		if p.Hops[i].Answered() {
			return p.Hops[i]
		}
	}
	return Hop{}
}

// Report is the result of a trace.
type Report struct {
	Protocol    probe.Protocol `json:"protocol"`
	Destination netip.Addr     `json:"destination"`
	Port        int            `json:"port,omitempty"`
	Source      netip.Addr     `json:"source,omitzero"`
	Flow        Path           `json:"flow"`
	// Echo is the ICMP echo trace run for comparison, if any.
	Echo *Path `json:"echo,omitempty"`
	// Notes say what could not be done (a comparison without a raw
	// socket).
	Notes []string   `json:"notes,omitempty"`
	MTU   *MTUResult `json:"mtu,omitempty"`
	// Reached is true when the destination answered the flow's packet.
	Reached bool `json:"reached"`
	// BlockedHop is the TTL at which the flow stops (the first silent or
	// rejecting hop), 0 when it reached the destination.
	BlockedHop int `json:"blocked_hop,omitempty"`
	// LastHop is the last hop that answered with Time Exceeded: the last
	// router known to have seen the flow's packet.
	LastHop  Hop           `json:"last_hop,omitzero"`
	Verdict  string        `json:"verdict"`
	Duration time.Duration `json:"duration_ns"`
}

// Tracer runs traces, spacing the probes to any one destination by Gap.
// The zero value is ready to use.
type Tracer struct {
	// Gap is the least time between two probes to one destination
	// (DefaultGap when zero).
	Gap time.Duration
	// NoRaw makes every trace behave as if raw sockets were refused.
	NoRaw bool

	mu   sync.Mutex
	next map[netip.Addr]time.Time
}

// wait blocks until the next probe to dst may go.
func (tr *Tracer) wait(ctx context.Context, dst netip.Addr) error {
	gap := tr.Gap
	if gap <= 0 {
		gap = DefaultGap
	}
	tr.mu.Lock()
	if tr.next == nil {
		tr.next = map[netip.Addr]time.Time{}
	}
	now := time.Now()
	at := now
	if n := tr.next[dst]; n.After(now) {
		at = n
	}
	tr.next[dst] = at.Add(gap)
	for d, t := range tr.next { // forget destinations long idle: the map stays bounded
		if now.Sub(t) > time.Minute {
			delete(tr.next, d)
		}
	}
	tr.mu.Unlock()
	if d := time.Until(at); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// prober sends one probe with a TTL and reports what came back. Sockets
// are created in the calling goroutine.
type prober interface {
	probe(ctx context.Context, ttl int, try int) (Hop, error)
	method() string
	close()
}

// Run traces the path of the flow described by req.
func (tr *Tracer) Run(ctx context.Context, req Request) (*Report, error) {
	if err := req.defaults(); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	start := time.Now()
	rep := &Report{Protocol: req.Protocol, Destination: req.Destination, Port: req.Port, Source: req.Source}
	pr, err := tr.newProber(req, req.Protocol, 0)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", probeName(req.Protocol, req.Port), err)
	}
	rep.Flow, err = tr.walk(ctx, req, pr, probeName(req.Protocol, req.Port))
	pr.close()
	if err != nil {
		return nil, err
	}
	rep.Reached = rep.Flow.Reached
	// A reset that claims the destination's address may still come from a
	// firewall on the way: the echo trace tells how far the destination is.
	if (!rep.Reached || rep.Flow.last().Reply == ReplyReset) && req.Compare && req.Protocol != probe.ICMP {
		if ep, err := tr.newProber(req, probe.ICMP, 0); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("no ICMP echo comparison: %v", err))
		} else {
			echo, err := tr.walk(ctx, req, ep, "icmp echo")
			ep.close()
			if err != nil {
				return nil, err
			}
			rep.Echo = &echo
		}
	}
	if req.MTU {
		m, err := tr.probeMTU(ctx, req, rep)
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("no path MTU probe: %v", err))
		} else {
			rep.MTU = m
		}
	}
	judge(rep, req)
	rep.Duration = time.Since(start)
	return rep, nil
}

// walk probes TTL 1, 2, ... until the destination or a rejecting device
// answers, SilentRun hops in a row stay silent, or MaxHops is reached.
func (tr *Tracer) walk(ctx context.Context, req Request, pr prober, name string) (Path, error) {
	p := Path{Probe: name, Method: pr.method()}
	silent := 0
	for ttl := 1; ttl <= req.MaxHops; ttl++ {
		h := Hop{TTL: ttl, Reply: ReplySilent}
		for try := 1; try <= req.Tries; try++ {
			if err := tr.wait(ctx, req.Destination); err != nil {
				return p, fmt.Errorf("trace: %w", err)
			}
			got, err := pr.probe(ctx, ttl, try)
			if err != nil {
				return p, fmt.Errorf("trace %s, hop %d: %w", name, ttl, err)
			}
			h = got
			h.TTL, h.Tries = ttl, try
			if h.Answered() {
				break
			}
		}
		p.Hops = append(p.Hops, h)
		if h.final() {
			p.Reached = reachedBy(h, req.Destination)
			break
		}
		if h.Answered() {
			silent = 0
		} else if silent++; silent >= SilentRun {
			break
		}
	}
	return p, nil
}

// reachedBy reports whether h is the destination's own answer.
func reachedBy(h Hop, dst netip.Addr) bool {
	if h.Addr != dst {
		return false
	}
	switch h.Reply {
	case ReplySynAck, ReplyEchoReply, ReplyUDP, ReplyReset:
		return true
	case ReplyUnreachable:
		return h.Code == "port-unreachable" || h.Code == "protocol-unreachable"
	}
	return false
}

func probeName(proto probe.Protocol, port int) string {
	if proto == probe.ICMP {
		return "icmp echo"
	}
	return fmt.Sprintf("%s/%d", proto, port)
}

// Resolve returns one address of host of the wanted family ("ip4", "ip6"
// or "" for either, IPv4 first), or the literal address itself.
func Resolve(ctx context.Context, host, family string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	var v6 netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case a.Is4() && family != "ip6":
			return a, nil
		case a.Is6() && family != "ip4" && !v6.IsValid():
			v6 = a
		}
	}
	if v6.IsValid() {
		return v6, nil
	}
	return netip.Addr{}, fmt.Errorf("resolve %s: no address of the wanted family", host)
}
