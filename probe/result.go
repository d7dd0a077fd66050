package probe

import (
	"context"
	"time"
)

// Phase is one timed step of a check.
type Phase uint8

// The phases a check may time. Not every check has every phase.
const (
	PhaseResolve Phase = iota
	PhaseConnect
	PhaseTLS
	PhaseRequest

	NumPhases
)

var phaseNames = [NumPhases]string{"resolve", "connect", "tls", "request"}

func (p Phase) String() string {
	if p < NumPhases {
		return phaseNames[p]
	}
	return "unknown"
}

// Names of Result.Values. Each becomes the metric flowprobe_<name> with the
// target's labels; ValueHelp holds the HELP text. Checks set only the values
// they measured.
const (
	ValueTLSCertExpiry   = "tls_cert_expiry_timestamp_seconds"  // leaf certificate NotAfter
	ValueTLSChainExpiry  = "tls_chain_expiry_timestamp_seconds" // earliest NotAfter in the verified chain
	ValueNTPOffset       = "ntp_offset_seconds"
	ValueNTPRTT          = "ntp_rtt_seconds"
	ValueNTPStratum      = "ntp_stratum"
	ValueNTPRootDistance = "ntp_root_distance_seconds"
	ValueNTPLeap         = "ntp_leap"
	ValueICMPRTT         = "icmp_rtt_seconds" // average round trip of the replies
	ValueICMPLoss        = "icmp_packet_loss_ratio"
	ValueDNSAnswers      = "dns_answers"
	ValueDNSRcode        = "dns_rcode"
	ValueHTTPStatus      = "http_status_code"
)

// ValueHelp is the HELP text of every known value metric.
var ValueHelp = map[string]string{
	ValueTLSCertExpiry:   "NotAfter of the peer's leaf certificate, as a Unix timestamp.",
	ValueTLSChainExpiry:  "Earliest NotAfter of the certificates in the peer's chain, as a Unix timestamp.",
	ValueNTPOffset:       "Clock offset of the NTP server relative to this host, in seconds.",
	ValueNTPRTT:          "Round trip of the NTP query, in seconds.",
	ValueNTPStratum:      "Stratum the NTP server reported.",
	ValueNTPRootDistance: "Root distance the NTP server reported, in seconds.",
	ValueNTPLeap:         "Leap indicator the NTP server reported (3 = not synchronised).",
	ValueICMPRTT:         "Average round trip of the ICMP echo replies, in seconds.",
	ValueICMPLoss:        "Fraction of ICMP echo requests that got no reply.",
	ValueDNSAnswers:      "Number of records in the DNS answer section.",
	ValueDNSRcode:        "DNS response code of the answer.",
	ValueHTTPStatus:      "HTTP status code of the response.",
}

// Well-known Result.Details keys shared by several checks.
const (
	DetailResponder = "responder" // "true" when a flowprobe responder answered
	DetailReason    = "reason"    // short English reason of a failure
)

// Result is what one check run reports.
type Result struct {
	Outcome Outcome
	// Success is the verdict after the target's expectation (see
	// Expect.Passes); Run sets it.
	Success  bool
	Start    time.Time
	Duration time.Duration
	// Phases holds the duration of each phase that ran; zero means the
	// phase did not run.
	Phases [NumPhases]time.Duration
	// Details are human-readable facts (TLS version, cipher, banner, rcode
	// name, kiss code...). Never exported as labels.
	Details map[string]string
	// Values are numeric protocol facts, exported as metrics (Value*).
	Values map[string]float64
	// Err is the wrapped error behind a failed outcome, nil on ok.
	Err error
}

// SetDetail records a human-readable detail.
func (r *Result) SetDetail(k, v string) {
	if r.Details == nil {
		r.Details = make(map[string]string, 4)
	}
	r.Details[k] = v
}

// SetValue records a numeric protocol fact.
func (r *Result) SetValue(k string, v float64) {
	if r.Values == nil {
		r.Values = make(map[string]float64, 4)
	}
	r.Values[k] = v
}

// Error returns the error text, or "" on success.
func (r *Result) Error() string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Error()
}

// Checker runs one check kind against a target. Check must return once ctx
// is done; the caller (the scheduler, or Run) owns the deadline.
type Checker interface {
	Check(ctx context.Context, t Target) Result
}

// CheckerFunc adapts a function to the Checker interface.
type CheckerFunc func(ctx context.Context, t Target) Result

// Check calls f(ctx, t).
func (f CheckerFunc) Check(ctx context.Context, t Target) Result { return f(ctx, t) }

// Run runs c against t under a deadline of t.Timeout (when non-zero) and
// fills in the start time, the duration and the verdict against the target's
// expectation.
func Run(ctx context.Context, c Checker, t Target) Result {
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	start := time.Now()
	r := c.Check(ctx, t)
	r.Start = start
	r.Duration = time.Since(start)
	r.Success = t.Expect.Passes(r.Outcome)
	return r
}
