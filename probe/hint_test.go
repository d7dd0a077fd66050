package probe

import (
	"strings"
	"testing"
)

func TestHintTable(t *testing.T) {
	res := func(o Outcome, connected bool, details ...string) *Result {
		r := &Result{Outcome: o, Connected: connected}
		for i := 0; i+1 < len(details); i += 2 {
			r.SetDetail(details[i], details[i+1])
		}
		return r
	}
	// A kind named after a transport only moves packets over it; the
	// others speak their application over (here) TCP.
	proto := func(kind string) Protocol {
		if p := Protocol(kind); p.Valid() {
			return p
		}
		return TCP
	}
	allow := func(kind string) *Target { return &Target{Check: kind, Protocol: proto(kind)} }
	deny := func(kind string) *Target { return &Target{Check: kind, Protocol: proto(kind), Expect: ExpectDeny} }
	passed := func(r *Result) *Result { r.Success = true; return r }
	cases := []struct {
		name string
		t    *Target
		r    *Result
		want string // a fragment of the hint; "" for no hint
	}{
		{"ok", allow("tcp"), passed(res(OutcomeOK, true)), ""},
		{"deny blocked", deny("tcp"), passed(res(OutcomeTimeout, false)), "blocked, as this flow must be"},
		{"deny refused before connect", deny("ldap"), passed(res(OutcomeRefused, false)), "blocked, as this flow must be"},
		{"deny connected", deny("tcp"), res(OutcomeOK, true), "a connection was made"},
		{"deny local source", deny("tcp"), res(OutcomeLocalError, false, DetailReason, ReasonSourceNotLocal), "fix source_address"},
		{"deny local other", deny("icmp"), res(OutcomeLocalError, false, DetailReason, ReasonICMPPermission), "nothing is known about the block"},
		{"responder answered ssh", allow("ssh"), res(OutcomeProtocolError, true, DetailResponder, "true"), "add --responder ROLE"},
		{"responder on a tcp check is no hint to add it", allow("tcp"), res(OutcomeProtocolError, true, DetailResponder, "true"), "something answered"},
		{"icmp permission", allow("icmp"), res(OutcomeLocalError, false, DetailReason, ReasonICMPPermission), "CAP_NET_RAW, or allow ping_group_range"},
		{"source not local", allow("tcp"), res(OutcomeLocalError, false, DetailReason, ReasonSourceNotLocal), "no interface of this machine"},
		{"family mismatch", allow("tcp"), res(OutcomeLocalError, false, DetailReason, ReasonFamilyMismatch), "different IP families"},
		{"secret unreadable", allow("iscsi"), res(OutcomeLocalError, false, DetailReason, ReasonSecretUnreadable), "a secret could not be read"},
		{"local other", allow("tcp"), res(OutcomeLocalError, false), "this machine could not run the check"},
		{"service timeout", allow("ldap"), res(OutcomeServiceTimeout, true), "the path is open: the service accepted the connection and then hung"},
		{"reset after connect", allow("ldap"), res(OutcomeProtocolError, true, DetailReason, ReasonResetAfterConnect), "then reset it"},
		{"refused after connect", allow("udp"), res(OutcomeProtocolError, true, DetailReason, ReasonRefusedAfterConnect), "stopped or restarted"},
		{"lost after connect", allow("tcp"), res(OutcomeProtocolError, true, DetailReason, ReasonLostAfterConnect), "became unreachable"},
		{"dns nxdomain", allow("dns"), res(OutcomeProtocolError, true, "rcode", "NXDOMAIN"), "the DNS server answered NXDOMAIN: the record is missing, not the path"},
		{"dns refused", allow("dns"), res(OutcomeProtocolError, true, "rcode", "REFUSED"), "answered REFUSED"},
		{"dns answer mismatch", allow("dns"), res(OutcomeProtocolError, true, "rcode", "NOERROR", DetailReason, `no answer matches "192.0.2.1"`), "other records than expected"},
		{"dns other", allow("dns"), res(OutcomeProtocolError, true, "rcode", "NOERROR"), "look at the zone"},
		{"ntp unsynchronised", allow("ntp"), res(OutcomeProtocolError, true, "ntp_status", "unsynchronised"), "not synchronised itself"},
		{"ntp kiss of death", allow("ntp"), res(OutcomeProtocolError, true, "ntp_status", "kiss_of_death"), "Kiss-of-Death"},
		{"ntp other", allow("ntp"), res(OutcomeProtocolError, true, "ntp_status", "offset_too_large"), "time is not usable"},
		{"http", allow("http"), res(OutcomeProtocolError, true), "an HTTP server answered"},
		{"tls not tls", allow("tls"), res(OutcomeProtocolError, true), "not with TLS"},
		{"protocol error", allow("ssh"), res(OutcomeProtocolError, true), "a different service on the port"},
		{"icmp timeout", allow("icmp"), res(OutcomeTimeout, false), "no echo reply"},
		{"timeout", allow("tcp"), res(OutcomeTimeout, false), "silently dropping"},
		{"refused", allow("tcp"), res(OutcomeRefused, false), "nothing listens on the port"},
		{"unreachable", allow("tcp"), res(OutcomeUnreachable, false), "ICMP unreachable"},
		{"no response", allow("udp"), res(OutcomeNoResponse, false), "open or filtered"},
		{"dns error", allow("tcp"), res(OutcomeDNSError, false), "did not resolve"},
		{"tls error", allow("tls"), res(OutcomeTLSError, true), "certificate"},
		{"auth error", allow("ldap"), res(OutcomeAuthError, true), "refused the credentials"},
	}
	for _, tc := range cases {
		got := Hint(tc.t, tc.r)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s: hint %q, want %q", tc.name, got, tc.want)
		}
	}
	// Every outcome but ok has a hint of its own for an allowed flow.
	for _, o := range Outcomes() {
		if o != OutcomeOK && Hint(allow("tcp"), res(o, false)) == "" {
			t.Errorf("%s has no hint", o)
		}
	}
}
