package checks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/flowprobe/flowprobe/probe"
)

// A catalog dns flow asks the root SOA (". SOA") unless the site names
// what to ask: any resolver answers it, so it proves the path and the
// service without knowing the site's zones.
var dnsKind = register(Spec[DNSOptions]{
	Name:      "dns",
	Transport: probe.UDP,
	Summary:   "DNS query to one server over UDP or TCP: rcode and expected answers",
	Defaults:  newDNSOptions,
	Values: []Value{
		{ValueDNSAnswers, "Number of records in the DNS answer section."},
		{ValueDNSRcode, "DNS response code of the answer."},
	},
	Hints: []Hint{
		{App: "dns"},
		{App: "dns", Transport: probe.TCP, Options: map[string]any{"transport": "tcp"}},
	},
	Run: runDNS,

	DefaultPort: 53,
})

// Values of the dns check.
const (
	ValueDNSAnswers = "dns_answers"
	ValueDNSRcode   = "dns_rcode"
)

// DNSOptions are the options of the dns check. The target is the DNS server
// (port 53 unless the target names another); the options say what to ask it
// and what the answer must look like.
type DNSOptions struct {
	// Name is the name to look up, e.g. "_ldap._tcp.example.org"; empty
	// asks the root zone (".").
	Name string `yaml:"name"`
	// Type is the record type: A, AAAA, SRV, PTR, MX, TXT, NS, SOA,
	// CNAME...; empty means SOA for the root and A for any other name.
	Type string `yaml:"type"`
	// Transport is "udp" (default) or "tcp".
	Transport string `yaml:"transport"`
	// Rcode is the response code the server must answer with (NOERROR).
	Rcode string `yaml:"rcode"`
	// Answers lists values each of which must match at least one record of
	// the answer section: an exact value, or a regular expression that
	// matches a whole value.
	Answers []string `yaml:"answers"`
	// MinAnswers is the least number of records in the answer section; nil
	// means 1 when Rcode is NOERROR and 0 otherwise.
	MinAnswers *int `yaml:"min_answers"`
	// RecursionDesired sets the RD bit of the query (default true).
	RecursionDesired bool `yaml:"recursion_desired"`

	name    string
	qtype   uint16
	rcode   int
	answers []answerMatcher
}

func (o *DNSOptions) transport() string { return o.Transport }

// dnsUDPSize is the EDNS0 buffer size the dns check advertises over UDP:
// the size the DNS flag day 2020 settled on, large enough for the SRV
// records of a directory with many controllers, small enough not to
// fragment.
const dnsUDPSize = 1232

// dnsDetailAnswers bounds the answers shown in Details.
const dnsDetailAnswers = 8

func newDNSOptions() *DNSOptions {
	return &DNSOptions{Transport: "udp", Rcode: "NOERROR", RecursionDesired: true}
}

// Validate checks the options and prepares the query type, rcode and answer
// matchers.
func (o *DNSOptions) Validate() error {
	var errs []error
	o.name = dns.Fqdn(cmp.Or(strings.TrimSpace(o.Name), "."))
	if _, ok := dns.IsDomainName(o.name); !ok {
		errs = append(errs, fmt.Errorf("name %q is not a domain name", o.Name))
	}
	typ := o.Type
	if typ == "" {
		typ = "A"
		if o.name == "." {
			typ = "SOA"
		}
	}
	qt, ok := dns.StringToType[strings.ToUpper(typ)]
	if !ok || qt == dns.TypeNone {
		errs = append(errs, fmt.Errorf("type %q is not a DNS record type", o.Type))
	}
	o.qtype = qt
	rc, ok := dns.StringToRcode[strings.ToUpper(o.Rcode)]
	if !ok {
		errs = append(errs, fmt.Errorf("rcode %q is not a DNS response code (NOERROR, NXDOMAIN, SERVFAIL, REFUSED...)", o.Rcode))
	}
	o.rcode = rc
	switch o.Transport {
	case "udp", "tcp":
	default:
		errs = append(errs, fmt.Errorf("transport %q: want udp or tcp", o.Transport))
	}
	if o.MinAnswers != nil && *o.MinAnswers < 0 {
		errs = append(errs, fmt.Errorf("min_answers %d is negative", *o.MinAnswers))
	}
	o.answers = o.answers[:0]
	for _, a := range o.Answers {
		if a == "" {
			errs = append(errs, errors.New("answers: empty entry"))
			continue
		}
		o.answers = append(o.answers, newAnswerMatcher(a))
	}
	return errors.Join(errs...)
}

// minAnswers is MinAnswers with its default applied.
func (o *DNSOptions) minAnswers() int {
	if o.MinAnswers != nil {
		return *o.MinAnswers
	}
	if o.rcode == dns.RcodeSuccess {
		return 1
	}
	return 0
}

// answerMatcher matches one expected answer against record values.
type answerMatcher struct {
	text string
	re   *regexp.Regexp // nil when text is not a valid regular expression
}

func newAnswerMatcher(s string) answerMatcher {
	m := answerMatcher{text: s}
	if re, err := regexp.Compile(`^(?:` + s + `)$`); err == nil {
		m.re = re
	}
	return m
}

// match reports whether v, the value of one record, is what m expects: the
// same text (names compared without case and trailing dot), or a whole match
// of the regular expression.
func (m answerMatcher) match(v string) bool {
	if normaliseName(v) == normaliseName(m.text) {
		return true
	}
	return m.re != nil && (m.re.MatchString(v) || m.re.MatchString(strings.TrimSuffix(v, ".")))
}

func normaliseName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// rrValue is the value of a record: its text without the owner, TTL, class
// and type ("192.0.2.10"; "0 100 389 dc1.example.org."). TXT strings are
// unquoted and joined.
func rrValue(rr dns.RR) string {
	if txt, ok := rr.(*dns.TXT); ok {
		return strings.Join(txt.Txt, "")
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// runDNS sends one query to the DNS server of the target and judges the
// reply. A transport failure is classified as usual (over UDP the socket is
// connected, so an ICMP port unreachable is "refused"). A reply that is not
// a DNS response to this query (garbage, another ID, QR clear, another
// question) is a protocol_error, and so is an unexpected rcode or answer:
// the path is open and the server answered, but the service is not doing
// its job.
func runDNS(ctx context.Context, t probe.Target, o *DNSOptions, r *probe.Result) error {
	conn, done, err := connect(ctx, &t, o.Transport, cmp.Or(t.Port, 53), r)
	if err != nil {
		return err
	}
	defer done()

	q := new(dns.Msg)
	q.SetQuestion(o.name, o.qtype)
	q.RecursionDesired = o.RecursionDesired
	co := &dns.Conn{Conn: conn}
	if o.Transport == "udp" {
		q.SetEdns0(dnsUDPSize, false)
		co.UDPSize = dnsUDPSize
	}

	start := time.Now()
	reply, err := dnsExchange(co, q)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	if err != nil {
		return err
	}
	answered(r)
	return judgeDNS(r, o, q, reply)
}

// dnsExchange writes q and reads one reply. Unlike dns.Client it does not
// skip replies with another ID: on a connected socket of its own, only the
// server can answer, so a wrong ID is the server's fault.
func dnsExchange(co *dns.Conn, q *dns.Msg) (*dns.Msg, error) {
	if err := co.WriteMsg(q); err != nil {
		return nil, fmt.Errorf("dns query: %w", err)
	}
	reply, err := co.ReadMsg()
	if err != nil {
		if stream := co.Conn.LocalAddr().Network() == "tcp"; stream && (isEOF(err) || errors.Is(err, syscall.ECONNRESET)) {
			// The server accepted the connection, then hung up on the query.
			return nil, Fail(probe.OutcomeProtocolError, "dns reply: the server closed the connection: %w", err)
		}
		// Transport errors keep their outcome (over UDP, ECONNREFUSED is the
		// ICMP port unreachable); a datagram that does not parse is a
		// protocol_error.
		return nil, fmt.Errorf("dns reply: %w", err)
	}
	switch {
	case reply.Id != q.Id:
		return nil, Fail(probe.OutcomeProtocolError, "dns reply: ID %d does not match query ID %d", reply.Id, q.Id)
	case !reply.Response:
		return nil, Fail(probe.OutcomeProtocolError, "dns reply: QR bit clear, the peer echoed a query instead of answering")
	case len(reply.Question) > 0 && (!strings.EqualFold(reply.Question[0].Name, q.Question[0].Name) ||
		reply.Question[0].Qtype != q.Question[0].Qtype):
		return nil, Fail(probe.OutcomeProtocolError, "dns reply: answers another question (%s %s)",
			reply.Question[0].Name, dns.TypeToString[reply.Question[0].Qtype])
	}
	return reply, nil
}

// judgeDNS records the reply in r and returns the failure, if any.
func judgeDNS(r *probe.Result, o *DNSOptions, q, reply *dns.Msg) error {
	rcode := dns.RcodeToString[reply.Rcode]
	if rcode == "" {
		rcode = strconv.Itoa(reply.Rcode)
	}
	r.SetValue(ValueDNSRcode, float64(reply.Rcode))
	r.SetValue(ValueDNSAnswers, float64(len(reply.Answer)))
	r.SetDetail("rcode", rcode)
	values := make([]string, len(reply.Answer))
	for i, rr := range reply.Answer {
		values[i] = rrValue(rr)
	}
	if len(values) > 0 {
		shown := values
		more := ""
		if len(shown) > dnsDetailAnswers {
			more = fmt.Sprintf(" (+%d more)", len(shown)-dnsDetailAnswers)
			shown = shown[:dnsDetailAnswers]
		}
		r.SetDetail("answers", strings.Join(shown, ", ")+more)
	}
	if reply.Truncated {
		r.SetDetail("truncated", "true")
	}
	if reply.Authoritative {
		r.SetDetail("authoritative", "true")
	}

	fail := func(format string, args ...any) error {
		reason := fmt.Sprintf(format, args...)
		r.SetDetail(probe.DetailReason, reason)
		return Fail(probe.OutcomeProtocolError, "dns %s %s: %s", q.Question[0].Name, dns.TypeToString[o.qtype], reason)
	}
	if reply.Rcode != o.rcode {
		return fail("rcode %s, expected %s", rcode, dns.RcodeToString[o.rcode])
	}
	if n, least := len(reply.Answer), o.minAnswers(); n < least {
		trunc := ""
		if reply.Truncated {
			trunc = " (reply truncated)"
		}
		return fail("%d answers, expected at least %d%s", n, least, trunc)
	}
	for _, m := range o.answers {
		found := false
		for _, v := range values {
			if m.match(v) {
				found = true
				break
			}
		}
		if !found {
			return fail("no answer matches %q", m.text)
		}
	}
	return nil
}
