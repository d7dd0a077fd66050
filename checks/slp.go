package checks

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

var slpKind = register(Spec[SLPOptions]{
	Name:        "slp",
	DefaultPort: 427,
	Transport:   probe.UDP,
	Summary:     "SLPv2 Service Request (RFC 2608): a SrvRply or SAAdvert from the agent",
	Defaults:    newSLPOptions,
	Hints: []Hint{
		{App: "slp"},
		{App: "slp", Transport: probe.TCP, Options: map[string]any{"transport": "tcp"}},
	},
	Run: runSLP,
})

// SLPOptions are the options of the slp check.
type SLPOptions struct {
	TransportOption `yaml:",inline"`
	// ServiceType is the service type asked for; "service:service-agent"
	// (the default) makes any service agent answer with its SAAdvert.
	ServiceType string `yaml:"service_type"`
	// Scopes is the scope list of the request, comma-separated (DEFAULT).
	Scopes string `yaml:"scopes"`
	// Language is the language tag of the request (en).
	Language string `yaml:"language"`
}

func newSLPOptions() *SLPOptions {
	return &SLPOptions{TransportOption: TransportOption{"udp"}, ServiceType: "service:service-agent", Scopes: "DEFAULT", Language: "en"}
}

// Validate checks the options.
func (o *SLPOptions) Validate() error {
	errs := []error{o.TransportOption.Validate()}
	if !strings.HasPrefix(o.ServiceType, "service:") {
		errs = append(errs, fmt.Errorf("service_type %q: want service:<type>", o.ServiceType))
	}
	if o.Language == "" {
		errs = append(errs, errors.New("language is empty"))
	}
	for _, f := range []struct{ name, v string }{{"service_type", o.ServiceType}, {"scopes", o.Scopes}, {"language", o.Language}} {
		if len(f.v) > 255 {
			errs = append(errs, fmt.Errorf("%s is longer than 255 bytes", f.name))
		}
	}
	return errors.Join(errs...)
}

// SLPv2 function IDs (RFC 2608 §8).
const (
	slpSrvRqst   = 1
	slpSrvRply   = 2
	slpDAAdvert  = 8
	slpSAAdvert  = 11
	slpHeaderLen = 14 // without the language tag
)

// slpErrors names the SLP error codes (RFC 2608 §7).
var slpErrors = map[uint16]string{
	1: "LANGUAGE_NOT_SUPPORTED", 2: "PARSE_ERROR", 3: "INVALID_REGISTRATION",
	4: "SCOPE_NOT_SUPPORTED", 5: "AUTHENTICATION_UNKNOWN", 6: "AUTHENTICATION_ABSENT",
	7: "AUTHENTICATION_FAILED", 9: "VER_NOT_SUPPORTED", 10: "INTERNAL_ERROR",
	11: "DA_BUSY_NOW", 12: "OPTION_NOT_UNDERSTOOD", 13: "INVALID_UPDATE",
	14: "MSG_NOT_SUPPORTED", 15: "REFRESH_REJECTED",
}

// slpFraming carries SLP over TCP: the message is its own frame, its
// length in the header (RFC 2608 §6.1).
var slpFraming = streamFraming{
	wrap: func(req []byte) []byte { return req },
	read: func(rd io.Reader) ([]byte, error) {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(rd, hdr); err != nil {
			return nil, err
		}
		n := int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
		if n > maxReply {
			return nil, Fail(probe.OutcomeProtocolError, "%w (%d)", errTooLarge, n)
		}
		if n < len(hdr) {
			return hdr, nil // the parser reports the bad length
		}
		b := make([]byte, n)
		copy(b, hdr)
		if _, err := io.ReadFull(rd, b[len(hdr):]); err != nil {
			return nil, err
		}
		return b, nil
	},
}

// slpRequest builds a SrvRqst with transaction ID xid.
func slpRequest(o *SLPOptions, xid uint16) []byte {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s))) //nolint:gosec // bounded by Validate
		return append(b, s...)
	}
	var body []byte
	body = str(body, "")            // previous responders
	body = str(body, o.ServiceType) // service type
	body = str(body, o.Scopes)      // scope list
	body = str(body, "")            // predicate
	body = str(body, "")            // SLP SPI
	return slpMessage(slpSrvRqst, xid, o.Language, body)
}

// slpMessage frames body as an SLPv2 message.
func slpMessage(fn uint8, xid uint16, lang string, body []byte) []byte {
	n := slpHeaderLen + len(lang) + len(body)
	b := []byte{2, fn, byte(n >> 16), byte(n >> 8), byte(n), 0, 0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, xid)
	b = binary.BigEndian.AppendUint16(b, uint16(len(lang))) //nolint:gosec // bounded by Validate
	b = append(b, lang...)
	return append(b, body...)
}

// slpReply is what a valid reply says.
type slpReply struct {
	function string
	urls     []string
	scopes   string
	errCode  uint16
}

// parseSLPReply decodes an SLPv2 SrvRply, SAAdvert or DAAdvert answering
// transaction xid. An error says why the reply is not one.
func parseSLPReply(b []byte, xid uint16) (slpReply, error) {
	var rep slpReply
	w := wire{b: b}
	version, fn, length := w.u8(), w.u8(), w.u24()
	_ = w.u16() // flags
	_ = w.u24() // next extension offset
	gotXID := w.u16()
	_ = w.str16() // language tag
	switch {
	case len(b) > 0 && version != 2:
		return rep, fmt.Errorf("not an SLPv2 message (version %d)", version)
	case w.err != nil:
		return rep, fmt.Errorf("not an SLP message: %w", w.err)
	case int(length) != len(b):
		return rep, fmt.Errorf("SLP length %d, but the message has %d bytes", length, len(b))
	case gotXID != xid:
		return rep, fmt.Errorf("SLP XID %d does not match the request's %d", gotXID, xid)
	}
	switch fn {
	case slpSrvRply:
		rep.function = "SrvRply"
		rep.errCode = w.u16()
		count := int(w.u16())
		for i := 0; i < count && w.err == nil; i++ {
			_ = w.u8()  // reserved
			_ = w.u16() // lifetime
			rep.urls = append(rep.urls, w.str16())
			for range int(w.u8()) {
				skipSLPAuth(&w)
			}
		}
	case slpSAAdvert:
		rep.function = "SAAdvert"
		rep.urls = append(rep.urls, w.str16())
		rep.scopes = w.str16()
		_ = w.str16() // attributes
	case slpDAAdvert:
		rep.function = "DAAdvert"
		rep.errCode = w.u16()
		_ = w.u32() // stateless boot timestamp
		rep.urls = append(rep.urls, w.str16())
		rep.scopes = w.str16()
	default:
		return rep, fmt.Errorf("SLP function %d is not a reply to a service request", fn)
	}
	if w.err != nil {
		return rep, fmt.Errorf("%s: %w", rep.function, w.err)
	}
	return rep, nil
}

// skipSLPAuth skips one authentication block (RFC 2608 §9.2): its length
// covers the whole block.
func skipSLPAuth(w *wire) {
	_ = w.u16() // block structure descriptor
	n := int(w.u16())
	w.bytes(n - 4)
}

// runSLP sends a Service Request and judges the reply: a SrvRply without
// error, or an SAAdvert (or DAAdvert), proves an SLP agent answers.
func runSLP(ctx context.Context, t probe.Target, o *SLPOptions, r *probe.Result) error {
	xid := uint16(newXID())
	reply, err := exchange(ctx, &t, o.Transport, cmp.Or(t.Port, 427), slpRequest(o, xid), slpFraming, r)
	if err != nil {
		return err
	}
	rep, err := parseSLPReply(reply, xid)
	if err != nil {
		return replyError(r, "slp", err)
	}
	r.SetDetail("slp_function", rep.function)
	if len(rep.urls) > 0 {
		r.SetDetail("url", firstLine([]byte(rep.urls[0])))
	}
	if rep.scopes != "" {
		r.SetDetail("scopes", firstLine([]byte(rep.scopes)))
	}
	if rep.errCode != 0 {
		name := cmp.Or(slpErrors[rep.errCode], fmt.Sprintf("error %d", rep.errCode))
		return replyError(r, "slp", fmt.Errorf("the agent answered %s", name))
	}
	return nil
}
