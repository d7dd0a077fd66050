package probe

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// Expect is what a target's flow should do: pass (allow, the default) or be
// blocked (deny).
type Expect string

// Expectations.
const (
	ExpectAllow Expect = "allow"
	ExpectDeny  Expect = "deny"
)

// Valid reports whether e is a known expectation ("" counts as allow).
func (e Expect) Valid() bool { return e == "" || e == ExpectAllow || e == ExpectDeny }

// Passes judges a result against the expectation, by its outcome and the
// phase it reached. For allow only ok passes. For deny only a blocked path
// passes: no connection (r.Connected false) and a timeout (silent drop), an
// ICMP unreachable, a refusal before connect (RST or ICMP port unreachable,
// which a firewall REJECT sends too) or, for UDP, no_response. Any
// connection is the violation, whatever happened after it. local_error
// fails whatever the expectation: this machine could not run the check.
func (e Expect) Passes(r *Result) bool {
	if e == ExpectDeny {
		if r.Connected {
			return false
		}
		switch r.Outcome {
		case OutcomeTimeout, OutcomeUnreachable, OutcomeRefused, OutcomeNoResponse:
			return true
		}
		return false
	}
	return r.Outcome == OutcomeOK
}

// Target is one concrete check planned for a site: a flow bound to one
// destination address and port, with the check kind that proves it.
type Target struct {
	// ID is stable across restarts and reloads for the same flow, host,
	// port, protocol and check: product/flow/host:port/protocol/check.
	ID          string
	Product     string
	Flow        string
	Source      string
	Destination string
	Host        string // name or address
	Port        int    // 0 for ICMP
	Protocol    Protocol
	Check       string // check kind, a key of the checks registry
	// Options holds the check kind's decoded, validated options (a pointer
	// to the kind's own options struct), or nil for the kind's defaults.
	Options  any
	Expect   Expect
	Required Requirement
	Interval time.Duration
	Timeout  time.Duration
	// SourceAddress, when set, is the local address checks bind to.
	SourceAddress string
	// IPFamily is "" (either, IPv4 first), "ip4" or "ip6".
	IPFamily string
	// Fingerprint identifies the settings above, raw options and the
	// files they name included (see Fingerprinter); the planner sets it.
	// Reloads compare targets by it (Same).
	Fingerprint Fingerprint
}

// Address is the target label: host:port, or the host alone for ICMP.
func (t *Target) Address() string {
	if t.Port == 0 {
		return t.Host
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// MakeID builds the stable target ID from its parts.
func MakeID(product, flow, host string, port int, proto Protocol, check string) string {
	hp := host
	if port != 0 {
		hp = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return fmt.Sprintf("%s/%s/%s/%s/%s", product, flow, hp, proto, check)
}
