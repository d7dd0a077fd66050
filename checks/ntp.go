package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/beevik/ntp"

	"github.com/flowprobe/flowprobe/probe"
)

var ntpKind = register(Spec[NTPOptions]{
	Name:      "ntp",
	Transport: probe.UDP,
	Summary:   "NTP query: offset, round trip, stratum, root distance, leap, Kiss-of-Death",
	Defaults:  newNTPOptions,
	Values: []Value{
		{ValueNTPOffset, "Clock offset of the NTP server relative to this host, in seconds."},
		{ValueNTPRTT, "Round trip of the NTP query, in seconds."},
		{ValueNTPStratum, "Stratum the NTP server reported."},
		{ValueNTPRootDistance, "Root distance the NTP server reported, in seconds."},
		{ValueNTPLeap, "Leap indicator the NTP server reported (3 = not synchronised)."},
	},
	Hints: []Hint{{App: "ntp"}},
	Run:   runNTP,

	DefaultPort: 123,
})

// Values of the ntp check.
const (
	ValueNTPOffset       = "ntp_offset_seconds"
	ValueNTPRTT          = "ntp_rtt_seconds"
	ValueNTPStratum      = "ntp_stratum"
	ValueNTPRootDistance = "ntp_root_distance_seconds"
	ValueNTPLeap         = "ntp_leap"
)

// NTPOptions are the options of the ntp check.
type NTPOptions struct {
	// Version is the NTP version of the query: 3 or 4 (default 4).
	Version int `yaml:"version"`
	// MaxOffset fails the check when the server's clock is further than this
	// from the local clock; 0 (the default) leaves the offset unchecked.
	MaxOffset time.Duration `yaml:"max_offset"`
	// MaxRootDistance fails the check when the server's root distance is
	// larger; 0 (the default) leaves it to the 16 s limit of RFC 5905.
	MaxRootDistance time.Duration `yaml:"max_root_distance"`
}

func newNTPOptions() *NTPOptions { return &NTPOptions{Version: 4} }

// Validate checks the options.
func (o *NTPOptions) Validate() error {
	var errs []error
	if o.Version != 3 && o.Version != 4 {
		errs = append(errs, fmt.Errorf("version %d: want 3 or 4", o.Version))
	}
	if o.MaxOffset < 0 {
		errs = append(errs, fmt.Errorf("max_offset %s is negative", o.MaxOffset))
	}
	if o.MaxRootDistance < 0 {
		errs = append(errs, fmt.Errorf("max_root_distance %s is negative", o.MaxRootDistance))
	}
	return errors.Join(errs...)
}

// Values of Details["ntp_status"]: what the server's reply says about its
// clock. Only ntpSynchronised is ok.
const (
	ntpSynchronised        = "synchronised"
	ntpUnsynchronised      = "unsynchronised"
	ntpKissOfDeath         = "kiss_of_death"
	ntpOffsetTooLarge      = "offset_too_large"
	ntpRootDistanceTooLong = "root_distance_too_large"
	ntpInvalid             = "invalid"
)

// runNTP sends one client-mode query to the target (port 123 unless the
// target names another) on a connected UDP socket, so an ICMP refusal comes
// back as refused or unreachable, and judges the reply. Any valid mode-4
// reply proves the path; the verdict then says whether the server can give
// time: an unsynchronised server, a Kiss-of-Death and a clock too far off
// are three distinct protocol_error verdicts, told apart by
// Details["ntp_status"] and Details["reason"].
func runNTP(ctx context.Context, t probe.Target, o *NTPOptions, r *probe.Result) error {
	port := t.Port
	if port == 0 {
		port = 123
	}
	addr, err := resolve(ctx, &t, r)
	if err != nil {
		return err
	}
	d, err := dialer(&t, "udp")
	if err != nil {
		return err
	}
	network := "udp4"
	if addr.Is6() {
		network = "udp6"
	}
	var release func() bool
	opts := ntp.QueryOptions{
		Version: o.Version,
		Dialer: func(_, remote string) (net.Conn, error) {
			start := time.Now()
			c, err := d.DialContext(ctx, network, remote)
			r.Phases[probe.PhaseConnect] = time.Since(start)
			if err != nil {
				return nil, fmt.Errorf("connect: %w", err)
			}
			release = stopOnDone(ctx, c)
			return c, nil
		},
	}
	if dl, ok := ctx.Deadline(); ok {
		opts.Timeout = time.Until(dl)
		if opts.Timeout <= 0 {
			return fmt.Errorf("ntp query: %w", context.DeadlineExceeded)
		}
	}
	start := time.Now()
	resp, err := ntp.QueryWithOptions(netip.AddrPortFrom(addr, uint16(port)).String(), opts)
	if release != nil {
		release()
	}
	r.Phases[probe.PhaseRequest] = time.Since(start) - r.Phases[probe.PhaseConnect]
	if err != nil {
		return fmt.Errorf("ntp query: %w", err)
	}
	answered(r)
	return judgeNTP(r, o, resp)
}

// isUnsyncCode reports the reference IDs that a server without a time
// source sends with stratum 0: none, or ntpd's INIT and STEP. They are
// states, not kiss codes asking the client to back off.
func isUnsyncCode(code string) bool { return code == "" || code == "INIT" || code == "STEP" }

// judgeNTP records what the reply says in r and returns the failure, if any.
func judgeNTP(r *probe.Result, o *NTPOptions, resp *ntp.Response) error {
	r.SetValue(ValueNTPStratum, float64(resp.Stratum))
	r.SetValue(ValueNTPLeap, float64(resp.Leap))
	r.SetDetail("stratum", fmt.Sprint(resp.Stratum))
	if resp.Stratum != 0 {
		r.SetDetail("reference_id", referenceID(resp))
	}
	fail := func(status, format string, args ...any) error {
		reason := fmt.Sprintf(format, args...)
		r.SetDetail("ntp_status", status)
		r.SetDetail(probe.DetailReason, reason)
		return Fail(probe.OutcomeProtocolError, "ntp: %s", reason)
	}

	// An unsynchronised server answers stratum 0 with no or an INIT/STEP
	// code, or stratum 16, or sets the leap indicator to 3; only a stratum 0
	// reply with another code is a real Kiss-of-Death. Neither has a clock
	// worth measuring, so no offset, round trip or root distance is kept.
	switch {
	case resp.Stratum == 0 && !isUnsyncCode(resp.KissCode):
		r.SetDetail("kiss_code", resp.KissCode)
		return fail(ntpKissOfDeath, "kiss-of-death %s", resp.KissCode)
	case resp.Stratum == 0 || resp.Stratum >= 16 || resp.Leap == ntp.LeapNotInSync:
		if resp.KissCode != "" {
			r.SetDetail("kiss_code", resp.KissCode)
		}
		return fail(ntpUnsynchronised, "server unsynchronised")
	}
	if err := resp.Validate(); err != nil {
		return fail(ntpInvalid, "invalid reply: %v", err)
	}

	r.SetValue(ValueNTPOffset, resp.ClockOffset.Seconds())
	r.SetValue(ValueNTPRTT, resp.RTT.Seconds())
	r.SetValue(ValueNTPRootDistance, resp.RootDistance.Seconds())
	r.SetDetail("offset", resp.ClockOffset.String())
	if o.MaxRootDistance > 0 && resp.RootDistance > o.MaxRootDistance {
		return fail(ntpRootDistanceTooLong, "root distance %s exceeds max_root_distance %s", resp.RootDistance, o.MaxRootDistance)
	}
	if o.MaxOffset > 0 && resp.ClockOffset.Abs() > o.MaxOffset {
		return fail(ntpOffsetTooLarge, "offset %s exceeds max_offset %s", resp.ClockOffset, o.MaxOffset)
	}
	r.SetDetail("ntp_status", ntpSynchronised)
	return nil
}

// referenceID formats the reference ID: four ASCII letters at stratum 1
// (GPS, PPS...), else the IPv4 address (or IPv6 hash) of the upstream.
func referenceID(resp *ntp.Response) string {
	id := resp.ReferenceID
	b := []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	if resp.Stratum == 1 {
		n := len(b)
		for n > 0 && b[n-1] == 0 {
			n--
		}
		for _, c := range b[:n] {
			if c < 0x20 || c > 0x7e {
				return fmt.Sprintf("0x%08x", id)
			}
		}
		return string(b[:n])
	}
	return netip.AddrFrom4([4]byte(b)).String()
}
