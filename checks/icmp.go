package checks

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/net/icmp"

	"github.com/flowprobe/flowprobe/probe"
)

var icmpKind = register(Spec[ICMPOptions]{
	Name:      "icmp",
	Transport: probe.ICMP,
	Summary:   "ICMP echo like LifeKeeper's lkping: count, per-reply timeout, round trip and loss",
	Defaults:  newICMPOptions,
	Values: []Value{
		{ValueICMPRTT, "Average round trip of the ICMP echo replies, in seconds."},
		{ValueICMPLoss, "Fraction of ICMP echo requests that got no reply."},
	},
	Run: icmpPinger.run,
})

// Values of the icmp check.
const (
	ValueICMPRTT  = "icmp_rtt_seconds" // average round trip of the replies
	ValueICMPLoss = "icmp_packet_loss_ratio"
)

// ICMPOptions are the options of the icmp check, modelled on LifeKeeper's
// lkping and its tunables IP_PINGTRIES and IP_PINGTIME.
type ICMPOptions struct {
	// Count is the number of echo requests (default 3).
	Count int `yaml:"count"`
	// ReplyTimeout is how long each echo waits for its reply (default 1s).
	ReplyTimeout time.Duration `yaml:"reply_timeout"`
	// Interval is the least time between two echoes; 0 (the default) sends
	// the next echo as soon as the previous one got its reply or timed out.
	Interval time.Duration `yaml:"interval"`
	// Size is the number of data bytes in each echo (default 56, like ping).
	Size int `yaml:"size"`
}

// Bounds of ICMPOptions.
const (
	icmpMinSize  = 8 // the token that ties a reply to its echo
	icmpMaxSize  = 65000
	icmpMaxCount = 100
)

func newICMPOptions() *ICMPOptions {
	return &ICMPOptions{Count: 3, ReplyTimeout: time.Second, Size: 56}
}

// Validate checks the options.
func (o *ICMPOptions) Validate() error {
	var errs []error
	if o.Count < 1 || o.Count > icmpMaxCount {
		errs = append(errs, fmt.Errorf("count %d: want 1 to %d", o.Count, icmpMaxCount))
	}
	if o.ReplyTimeout <= 0 {
		errs = append(errs, fmt.Errorf("reply_timeout %s: want more than 0", o.ReplyTimeout))
	}
	if o.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %s is negative", o.Interval))
	}
	if o.Size < icmpMinSize || o.Size > icmpMaxSize {
		errs = append(errs, fmt.Errorf("size %d: want %d to %d bytes", o.Size, icmpMinSize, icmpMaxSize))
	}
	return errors.Join(errs...)
}

// icmpPinger runs the icmp checks of the registry: the process-wide
// pinger, with one shared ICMP socket per address family.
var icmpPinger = newPinger(icmp.ListenPacket)

// ICMPAvailable reports whether this process can send ICMP echoes over
// IPv4 ("ip4") or IPv6 ("ip6"), and if not, why and what to change. The
// error is the one every icmp check would fail with; call it at startup or
// in `flowprobe validate` when the configuration has icmp targets.
func ICMPAvailable(family string) error {
	p := icmpPinger
	e := p.v4
	if family == "ip6" {
		e = p.v6
	}
	s, err := e.acquire()
	if err != nil {
		return err
	}
	e.release(s)
	return nil
}

// pinger runs icmp checks. It owns one endpoint per address family; each
// endpoint opens its socket when the first check needs it and closes it
// when the last running check is done, so an idle process holds no socket
// and no reader goroutine.
type pinger struct {
	v4, v6 *icmpEndpoint
}

// icmpListen opens an ICMP socket (icmp.ListenPacket; tests inject others).
type icmpListen func(network, address string) (*icmp.PacketConn, error)

func newPinger(listen icmpListen) *pinger {
	return &pinger{
		v4: &icmpEndpoint{listen: listen},
		v6: &icmpEndpoint{listen: listen, v6: true},
	}
}

// Check sends the echoes of one icmp check, one after the other, each
// waiting up to reply_timeout for its reply. Like lkping, one reply is
// enough: the outcome is ok when any echo was answered. Otherwise it is
// unreachable when an ICMP Destination Unreachable or Time Exceeded came
// back for an echo (raw socket only; the check stops there), and timeout
// when every echo went unanswered.
func (p *pinger) Check(ctx context.Context, t probe.Target) probe.Result {
	return runWith(ctx, t, "icmp", newICMPOptions, p.run)
}

// run is the icmp check with its options.
func (p *pinger) run(ctx context.Context, t probe.Target, o *ICMPOptions, r *probe.Result) error {
	dst, err := resolve(ctx, &t, r)
	if err != nil {
		return err
	}
	dst = dst.WithZone("")
	var src netip.Addr
	if t.SourceAddress != "" {
		if src, err = netip.ParseAddr(t.SourceAddress); err != nil {
			return fmt.Errorf("source address %q: %w", t.SourceAddress, err)
		}
		if src = src.Unmap(); src.Is4() != dst.Is4() {
			return fmt.Errorf("source address %s and destination %s are of different families", src, dst)
		}
	}
	e := p.v4
	if dst.Is6() {
		e = p.v6
	}
	s, err := e.acquire()
	if err != nil {
		return err
	}
	defer e.release(s)
	if s.raw {
		r.SetDetail("socket", "raw")
	} else {
		r.SetDetail("socket", "datagram")
	}

	start := time.Now()
	sent, received, rttSum, unreach, err := e.echoes(ctx, s, dst, src, o)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	return icmpVerdict(r, dst, sent, received, rttSum, unreach, err)
}

// icmpVerdict records what the echoes found in r and returns the failure,
// if any: one reply is enough; else an ICMP error is unreachable; else a
// send error is what it is; else every echo went unanswered.
func icmpVerdict(r *probe.Result, dst netip.Addr, sent, received int, rttSum time.Duration, unreach *icmpError, err error) error {
	r.SetDetail("sent", strconv.Itoa(sent))
	r.SetDetail("received", strconv.Itoa(received))
	if sent > 0 {
		r.SetValue(ValueICMPLoss, float64(sent-received)/float64(sent))
	}
	if received > 0 {
		r.SetValue(ValueICMPRTT, (rttSum / time.Duration(received)).Seconds())
		return nil
	}
	switch {
	case unreach != nil:
		r.SetDetail("icmp_type", strconv.Itoa(unreach.typ))
		r.SetDetail("icmp_code", strconv.Itoa(unreach.code))
		r.SetDetail("icmp_from", unreach.from.String())
		r.SetDetail(probe.DetailReason, unreach.String())
		return Fail(probe.OutcomeUnreachable, "icmp echo to %s: %s", dst, unreach)
	case err != nil:
		return err
	}
	reason := fmt.Sprintf("no reply to %d echo requests", sent)
	r.SetDetail(probe.DetailReason, reason)
	return Fail(probe.OutcomeTimeout, "icmp echo to %s: %s", dst, reason)
}
