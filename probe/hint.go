package probe

import (
	"slices"
	"strings"
)

// Reasons (Result.Details[DetailReason]) that the classification itself
// records, so that a hint can tell the causes of one outcome apart.
const (
	// ReasonResetAfterConnect: the peer reset an established connection
	// (ECONNRESET or EPIPE after connect): a protocol_error, never refused.
	ReasonResetAfterConnect = "reset after connect"
	// ReasonRefusedAfterConnect: an ICMP port unreachable after a UDP
	// answer had already come.
	ReasonRefusedAfterConnect = "refused after connect"
	// ReasonLostAfterConnect: a host or net unreachable on a connection
	// that was already up.
	ReasonLostAfterConnect = "path lost after connect"
	// ReasonICMPPermission: neither a raw nor a datagram ICMP socket could
	// be opened.
	ReasonICMPPermission = "no permission to open an ICMP socket"
	// ReasonSourceNotLocal: the source address is on no interface of this
	// machine (EADDRNOTAVAIL); no packet was sent.
	ReasonSourceNotLocal = "source address is not on this machine"
	// ReasonFamilyMismatch: the source address and the target are of
	// different address families, or the target has no address of the
	// family the check must use.
	ReasonFamilyMismatch = "address family mismatch"
	// ReasonSecretUnreadable: a password, community or CHAP secret could
	// not be read when the check ran.
	ReasonSecretUnreadable = "secret unreadable"
)

// hintRule is one row of the hint table: when every set field matches,
// text is the hint. An empty kinds, reason or detail matches anything.
type hintRule struct {
	// deny: the row is for expect: deny flows only (passed or failed as
	// given by passed); other rows are for every expectation.
	deny, passed bool
	outcome      Outcome // ignored by deny rows
	// connected: 0 either phase, 1 only after connect, -1 only before.
	connected int
	kinds     []string // check kinds the row is for
	appAware  bool     // only for kinds that speak an application protocol
	reason    string   // Details[DetailReason] has this prefix
	detail    [2]string
	text      string
}

// appAware reports whether t's check speaks an application protocol, so
// that reaching a flowprobe responder with it proves the path but not the
// service. The check kinds that only move packets (a connect, a datagram,
// an echo) are named after their transport; every other kind is an
// application's, which keeps this rule free of a list of kinds.
func appAware(t *Target) bool { return t.Check != string(t.Protocol) }

// hints is the one table of remedies, by outcome, phase, kind and cause.
// The first matching row wins, so specific rows come before general ones;
// every outcome but ok ends in a general row.
var hints = []hintRule{
	// Flows that must be blocked: the verdict is about the path.
	{deny: true, passed: true,
		text: "blocked, as this flow must be: no connection was made"},
	{deny: true, outcome: OutcomeLocalError, reason: ReasonSourceNotLocal,
		text: "the source address is on no interface of this machine: fix source_address; nothing is known about the block yet"},
	{deny: true, outcome: OutcomeLocalError,
		text: "this machine could not run the check: nothing is known about the block yet"},
	{deny: true,
		text: "this flow must be blocked, but a connection was made: the firewall lets it through"},

	// A flowprobe responder answered an application-aware check.
	{outcome: OutcomeProtocolError, appAware: true, detail: [2]string{DetailResponder, "true"},
		text: "a flowprobe responder answered: add --responder ROLE to prove the path to it"},

	{outcome: OutcomeLocalError, reason: ReasonICMPPermission,
		text: "this machine may not send ICMP echoes: run as root or grant CAP_NET_RAW, or allow ping_group_range (sysctl net.ipv4.ping_group_range)"},
	{outcome: OutcomeLocalError, reason: ReasonSourceNotLocal,
		text: "the source address is on no interface of this machine: fix source_address or run the check where that address lives"},
	{outcome: OutcomeLocalError, reason: ReasonFamilyMismatch,
		text: "the source address and the target are of different IP families: give a source address of the target's family, or set ip_family"},
	{outcome: OutcomeLocalError, reason: ReasonSecretUnreadable,
		text: "a secret could not be read on this machine: check the file's path and permissions, or that the environment variable is set"},
	{outcome: OutcomeLocalError,
		text: "this machine could not run the check: nothing is known about the network yet"},

	{outcome: OutcomeServiceTimeout,
		text: "the path is open: the service accepted the connection and then hung"},

	{outcome: OutcomeProtocolError, reason: ReasonResetAfterConnect,
		text: "the path is open: the service accepted the connection and then reset it — a different service on the port, or one that rejects this client"},
	{outcome: OutcomeProtocolError, reason: ReasonRefusedAfterConnect,
		text: "the service answered, then the port was closed: the service stopped or restarted during the check"},
	{outcome: OutcomeProtocolError, reason: ReasonLostAfterConnect,
		text: "the connection was up, then the host became unreachable: a routing change or a failover during the check"},
	{outcome: OutcomeProtocolError, kinds: []string{"dns"}, detail: [2]string{"rcode", "NXDOMAIN"},
		text: "the DNS server answered NXDOMAIN: the record is missing, not the path"},
	{outcome: OutcomeProtocolError, kinds: []string{"dns"}, detail: [2]string{"rcode", "REFUSED"},
		text: "the DNS server answered REFUSED: the path is open, the server does not serve this client or zone"},
	{outcome: OutcomeProtocolError, kinds: []string{"dns"}, reason: "no answer matches",
		text: "the DNS server answered, with other records than expected: fix the record or the check's answers"},
	{outcome: OutcomeProtocolError, kinds: []string{"dns"},
		text: "the DNS server answered, but not as expected: the path is open, look at the zone"},
	{outcome: OutcomeProtocolError, kinds: []string{"ntp"}, detail: [2]string{"ntp_status", "unsynchronised"},
		text: "the NTP server answered but is not synchronised itself: the path is open, look at its time sources"},
	{outcome: OutcomeProtocolError, kinds: []string{"ntp"}, detail: [2]string{"ntp_status", "kiss_of_death"},
		text: "the NTP server answered with a Kiss-of-Death: it rate-limits or denies this client"},
	{outcome: OutcomeProtocolError, kinds: []string{"ntp"},
		text: "the NTP server answered, but its time is not usable: the path is open"},
	{outcome: OutcomeProtocolError, kinds: []string{"http"},
		text: "an HTTP server answered, but not as expected: check the path, status codes and body the check expects"},
	{outcome: OutcomeProtocolError, kinds: []string{"tls"},
		text: "something answered, but not with TLS: a plain-text service on this port?"},
	{outcome: OutcomeProtocolError,
		text: "something answered, but not as expected: a different service on the port, or the service is misconfigured; the path is open"},

	{outcome: OutcomeTimeout, kinds: []string{"icmp"},
		text: "no echo reply: a firewall drops ICMP, or the host is down"},
	{outcome: OutcomeTimeout,
		text: "no connection before the deadline: most often a firewall silently dropping the packets; ask for the flow to be opened"},
	{outcome: OutcomeRefused, connected: -1,
		text: "the host answered with a refusal: nothing listens on the port, or a firewall REJECTs; start the service or open the flow"},
	{outcome: OutcomeUnreachable,
		text: "an ICMP unreachable came back: a routing problem or a firewall REJECT on the way"},
	{outcome: OutcomeNoResponse,
		text: "the UDP datagram got no answer: open or filtered; a cooperating peer (flowprobe listen) proves which"},
	{outcome: OutcomeDNSError,
		text: "the target name did not resolve from this machine: fix the name or the resolver"},
	{outcome: OutcomeTLSError,
		text: "the path is open, but the TLS handshake or the certificate failed: look at the certificate, CA and versions"},
	{outcome: OutcomeAuthError,
		text: "the path is open and the service answered, but it refused the credentials"},
}

// Hint is the remedy for a result r of target t: what the outcome means
// in the phase the run reached, for t's check kind, expectation and the
// cause, and what to do. It is "" for an allowed flow that passed. Every
// outcome has a general hint; specific rows (a responder reached,
// NXDOMAIN, an unsynchronised NTP server, a reset after connect, each
// local fault...) come first.
func Hint(t *Target, r *Result) string {
	deny := t.Expect == ExpectDeny
	if !deny && r.Outcome == OutcomeOK {
		return ""
	}
	for i := range hints {
		if h := &hints[i]; h.deny == deny && h.matches(t, r) {
			return h.text
		}
	}
	return r.Outcome.Meaning()
}

func (h *hintRule) matches(t *Target, r *Result) bool {
	if h.deny && (h.passed != r.Success || (h.outcome != OutcomeOK && h.outcome != r.Outcome)) {
		return false
	}
	switch {
	case !h.deny && h.outcome != r.Outcome,
		h.connected == 1 && !r.Connected,
		h.connected == -1 && r.Connected,
		len(h.kinds) > 0 && !slices.Contains(h.kinds, t.Check),
		h.appAware && !appAware(t),
		h.reason != "" && !strings.HasPrefix(r.Details[DetailReason], h.reason),
		h.detail[0] != "" && r.Details[h.detail[0]] != h.detail[1]:
		return false
	}
	return true
}
