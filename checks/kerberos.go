package checks

import (
	"cmp"
	"context"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

var kerberosKind = register(Spec[KerberosOptions]{
	Name:        "kerberos",
	DefaultPort: 88,
	Transport:   probe.UDP,
	Summary:     "Kerberos AS-REQ for a made-up principal: the KDC's KRB-ERROR proves it answers",
	Defaults:    newKerberosOptions,
	Hints: []Hint{
		{App: "kerberos"},
		{App: "kerberos", Transport: probe.TCP, Options: map[string]any{"transport": "tcp"}},
	},
	Run: runKerberos,
})

// KerberosOptions are the options of the kerberos check.
type KerberosOptions struct {
	TransportOption `yaml:",inline"`
	// Realm is the realm of the request; empty takes the domain of the
	// target's name in capitals (dc1.example.org → EXAMPLE.ORG), or
	// FLOWPROBE.INVALID for an address.
	Realm string `yaml:"realm"`
	// Principal is the client principal, one that should not exist.
	Principal string `yaml:"principal"`
}

func newKerberosOptions() *KerberosOptions {
	return &KerberosOptions{TransportOption: TransportOption{"udp"}, Principal: "flowprobe-no-such-user"}
}

// Validate checks the options.
func (o *KerberosOptions) Validate() error {
	return errors.Join(o.TransportOption.Validate(), validateKerberosNames(o.Realm, o.Principal))
}

func validateKerberosNames(realm, principal string) error {
	var errs []error
	if principal == "" || len(principal) > 255 || strings.ContainsAny(principal, "@/ ") {
		errs = append(errs, fmt.Errorf("principal %q: want one name component without @, / or spaces", principal))
	}
	if len(realm) > 255 || strings.ContainsAny(realm, "@/ ") {
		errs = append(errs, fmt.Errorf("realm %q is not a realm name", realm))
	}
	return errors.Join(errs...)
}

// kerberosRealm is the realm to ask in: realm, or one made from the host.
func kerberosRealm(realm, host string) string {
	if realm != "" {
		return realm
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if _, domain, ok := strings.Cut(strings.TrimSuffix(host, "."), "."); ok && strings.Contains(domain, ".") {
			return strings.ToUpper(domain)
		}
	}
	return "FLOWPROBE.INVALID"
}

// DER, as much of it as the requests need. Kerberos (RFC 4120 §5) tags
// every field explicitly: [n] wraps the field's own encoding.
func der(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := []byte{tag}
	switch {
	case n < 0x80:
		b = append(b, byte(n))
	case n < 0x100:
		b = append(b, 0x81, byte(n))
	default:
		b = append(b, 0x82, byte(n>>8), byte(n))
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func derCtx(n int, parts ...[]byte) []byte { return der(0xa0|byte(n), parts...) }
func derSeq(parts ...[]byte) []byte        { return der(0x30, parts...) }
func derString(s string) []byte            { return der(0x1b, []byte(s)) } // GeneralString

func derInt(v int64) []byte {
	b, _ := asn1.Marshal(v)
	return b
}

// derPrincipal is a PrincipalName of type t with the given components.
func derPrincipal(t int64, names ...string) []byte {
	var strs [][]byte
	for _, n := range names {
		strs = append(strs, derString(n))
	}
	return derSeq(derCtx(0, derInt(t)), derCtx(1, derSeq(strs...)))
}

// Kerberos message types and name types.
const (
	krbASReq       = 10
	krbASRep       = 11
	krbAPReq       = 14
	krbError       = 30
	krbNTPrincipal = 1
	krbNTSrvInst   = 2
	krbEtypeAES256 = 18
	krbEtypeAES128 = 17
	krbEtypeRC4    = 23
	krbTimeFormat  = "20060102150405Z"
)

// kerberosASReq is an AS-REQ for principal@realm asking a TGT.
func kerberosASReq(realm, principal string, nonce uint32, now time.Time) []byte {
	body := derSeq(
		derCtx(0, der(0x03, []byte{0, 0x40, 0x81, 0, 0x10})), // forwardable, renewable, canonicalize, renewable-ok
		derCtx(1, derPrincipal(krbNTPrincipal, principal)),
		derCtx(2, derString(realm)),
		derCtx(3, derPrincipal(krbNTSrvInst, "krbtgt", realm)),
		derCtx(5, der(0x18, []byte(now.Add(time.Hour).UTC().Format(krbTimeFormat)))),
		derCtx(7, derInt(int64(nonce&0x7fffffff))),
		derCtx(8, derSeq(derInt(krbEtypeAES256), derInt(krbEtypeAES128), derInt(krbEtypeRC4))),
	)
	return der(0x60|krbASReq, derSeq(derCtx(1, derInt(5)), derCtx(2, derInt(krbASReq)), derCtx(4, body)))
}

// krbErrorMsg is the part of a KRB-ERROR (RFC 4120 §5.9.1) the checks read.
type krbErrorMsg struct {
	PVNO      int           `asn1:"explicit,tag:0"`
	MsgType   int           `asn1:"explicit,tag:1"`
	CTime     asn1.RawValue `asn1:"optional,explicit,tag:2"`
	Cusec     int           `asn1:"optional,explicit,tag:3"`
	STime     asn1.RawValue `asn1:"explicit,tag:4"`
	Susec     int           `asn1:"explicit,tag:5"`
	ErrorCode int32         `asn1:"explicit,tag:6"`
	CRealm    asn1.RawValue `asn1:"optional,explicit,tag:7"`
	CName     asn1.RawValue `asn1:"optional,explicit,tag:8"`
	Realm     asn1.RawValue `asn1:"explicit,tag:9"`
	SName     asn1.RawValue `asn1:"explicit,tag:10"`
	EText     asn1.RawValue `asn1:"optional,explicit,tag:11"`
	EData     []byte        `asn1:"optional,explicit,tag:12"`
}

// krbErrorNames names the error codes a probe meets (RFC 4120 §7.5.9).
var krbErrorNames = map[int32]string{
	6: "KDC_ERR_C_PRINCIPAL_UNKNOWN", 7: "KDC_ERR_S_PRINCIPAL_UNKNOWN", 14: "KDC_ERR_ETYPE_NOSUPP",
	18: "KDC_ERR_CLIENT_REVOKED", 24: "KDC_ERR_PREAUTH_FAILED", 25: "KDC_ERR_PREAUTH_REQUIRED",
	31: "KRB_AP_ERR_BAD_INTEGRITY", 37: "KRB_AP_ERR_SKEW", 41: "KRB_AP_ERR_MODIFIED",
	52: "KRB_ERR_RESPONSE_TOO_BIG", 60: "KRB_ERR_GENERIC", 68: "KDC_ERR_WRONG_REALM",
}

// kerberosReply is what a KDC's answer says.
type kerberosReply struct {
	msgType   int
	errorCode int32
	errorName string
	eText     string
	realm     string
}

// parseKerberosReply decodes a KRB-ERROR or (should the principal exist
// without pre-authentication) an AS-REP.
func parseKerberosReply(b []byte) (kerberosReply, error) {
	var rep kerberosReply
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(b, &outer); err != nil {
		return rep, fmt.Errorf("not a Kerberos message: %w", err)
	}
	switch {
	case outer.Class == asn1.ClassApplication && outer.Tag == krbASRep:
		rep.msgType = krbASRep
		return rep, nil
	case outer.Class != asn1.ClassApplication || outer.Tag != krbError:
		return rep, fmt.Errorf("not a KRB-ERROR or AS-REP (ASN.1 class %d tag %d)", outer.Class, outer.Tag)
	}
	var e krbErrorMsg
	if _, err := asn1.UnmarshalWithParams(b, &e, "application,explicit,tag:30"); err != nil {
		return rep, fmt.Errorf("malformed KRB-ERROR: %w", err)
	}
	if e.PVNO != 5 || e.MsgType != krbError {
		return rep, fmt.Errorf("KRB-ERROR with pvno %d, msg-type %d", e.PVNO, e.MsgType)
	}
	rep.msgType = krbError
	rep.errorCode = e.ErrorCode
	rep.errorName = cmp.Or(krbErrorNames[e.ErrorCode], fmt.Sprintf("error %d", e.ErrorCode))
	rep.eText = krbString(e.EText)
	rep.realm = krbString(e.Realm)
	return rep, nil
}

// krbString is the text of an explicitly tagged KerberosString.
func krbString(v asn1.RawValue) string {
	var s asn1.RawValue
	if _, err := asn1.Unmarshal(v.Bytes, &s); err != nil || s.IsCompound {
		return ""
	}
	return firstLine(s.Bytes)
}

// kerberosFraming carries Kerberos over TCP: a 4-byte length first.
var kerberosFraming = streamFraming{wrap: wrapLength4, read: readLength4}

// runKerberos sends an AS-REQ for a principal that should not exist: any
// KRB-ERROR (typically KDC_ERR_C_PRINCIPAL_UNKNOWN, or WRONG_REALM) or an
// AS-REP proves a KDC answers. No credentials are sent.
func runKerberos(ctx context.Context, t probe.Target, o *KerberosOptions, r *probe.Result) error {
	realm := kerberosRealm(o.Realm, t.Host)
	req := kerberosASReq(realm, o.Principal, newXID(), time.Now())
	reply, err := exchange(ctx, &t, o.Transport, cmp.Or(t.Port, 88), req, kerberosFraming, r)
	if err != nil {
		return err
	}
	rep, err := parseKerberosReply(reply)
	if err != nil {
		return replyError(r, "kerberos", err)
	}
	rep.record(r)
	return nil
}

// record puts what the reply says in r.
func (rep kerberosReply) record(r *probe.Result) {
	if rep.msgType == krbASRep {
		r.SetDetail("kerberos_reply", "AS-REP")
		return
	}
	r.SetDetail("kerberos_reply", "KRB-ERROR")
	r.SetDetail("kerberos_error", rep.errorName)
	if rep.eText != "" {
		r.SetDetail("kerberos_text", rep.eText)
	}
	if rep.realm != "" {
		r.SetDetail("kerberos_realm", rep.realm)
	}
}
