package checks

import (
	"cmp"
	"context"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flowprobe/flowprobe/probe"
)

var kpasswdKind = register(Spec[KpasswdOptions]{
	Name:        "kpasswd",
	DefaultPort: 464,
	Transport:   probe.UDP,
	Summary:     "Kerberos change-password request that cannot succeed: the server's error reply proves it answers",
	Defaults:    newKpasswdOptions,
	Hints: []Hint{
		{App: "kpasswd"},
		{App: "kpasswd", Transport: probe.TCP, Options: map[string]any{"transport": "tcp"}},
	},
	Run: runKpasswd,
})

// KpasswdOptions are the options of the kpasswd check.
type KpasswdOptions struct {
	TransportOption `yaml:",inline"`
	// Realm is the realm the request names; empty as for the kerberos
	// check.
	Realm string `yaml:"realm"`
}

func newKpasswdOptions() *KpasswdOptions {
	return &KpasswdOptions{TransportOption: TransportOption{"udp"}}
}

// Validate checks the options.
func (o *KpasswdOptions) Validate() error {
	return errors.Join(o.TransportOption.Validate(), validateKerberosNames(o.Realm, "kadmin"))
}

// kpasswd protocol versions (RFC 3244 §2, the RFC 1510 change-password
// protocol) and message tags.
const (
	kpasswdChange = 1
	kpasswdSet    = 0xff80
	krbPriv       = 21
)

// kpasswdResults names the result codes of a kpasswd reply.
var kpasswdResults = map[uint16]string{
	0: "SUCCESS", 1: "MALFORMED", 2: "HARDERROR", 3: "AUTHERROR", 4: "SOFTERROR",
	5: "ACCESSDENIED", 6: "BAD_VERSION", 7: "INITIAL_FLAG_NEEDED",
}

// kpasswdRequest is a change-password request whose AP-REQ carries a
// ticket no server can decrypt: a kpasswd server answers it with an error
// reply, and no password is ever sent.
func kpasswdRequest(realm string) []byte {
	bogus := derSeq(derCtx(0, derInt(krbEtypeAES256)), derCtx(2, der(0x04, make([]byte, 32))))
	ticket := der(0x61, derSeq(
		derCtx(0, derInt(5)),
		derCtx(1, derString(realm)),
		derCtx(2, derPrincipal(krbNTSrvInst, "kadmin", "changepw")),
		derCtx(3, bogus)))
	apReq := der(0x60|krbAPReq, derSeq(
		derCtx(0, derInt(5)), derCtx(1, derInt(krbAPReq)),
		derCtx(2, der(0x03, []byte{0, 0, 0, 0, 0})),
		derCtx(3, ticket), derCtx(4, bogus)))
	priv := der(0x60|krbPriv, derSeq(derCtx(0, derInt(5)), derCtx(1, derInt(krbPriv)), derCtx(3, bogus)))
	n := 6 + len(apReq) + len(priv)
	b := binary.BigEndian.AppendUint16(nil, uint16(n)) //nolint:gosec // a few hundred bytes
	b = binary.BigEndian.AppendUint16(b, kpasswdChange)
	b = binary.BigEndian.AppendUint16(b, uint16(len(apReq))) //nolint:gosec // as above
	return append(append(b, apReq...), priv...)
}

// kpasswdReply is what a kpasswd server's answer says.
type kpasswdReply struct {
	kind   string // KRB-ERROR or KRB-PRIV
	krb    kerberosReply
	result string // the result code in an error's e-data
}

// parseKpasswdReply decodes a kpasswd reply (RFC 3244 §3): a framed
// KRB-PRIV or KRB-ERROR, or a bare KRB-ERROR, which some servers send to
// a request they cannot parse.
func parseKpasswdReply(b []byte) (kpasswdReply, error) {
	var rep kpasswdReply
	if len(b) > 0 && b[0] == 0x60|krbError {
		return parseKpasswdError(b)
	}
	w := wire{b: b}
	length, version, apRepLen := w.u16(), w.u16(), w.u16()
	w.bytes(int(apRepLen))
	switch {
	case w.err != nil:
		return rep, fmt.Errorf("not a kpasswd reply: %w", w.err)
	case int(length) != len(b):
		return rep, fmt.Errorf("kpasswd length %d, but the reply has %d bytes", length, len(b))
	case version != kpasswdChange && version != kpasswdSet:
		return rep, fmt.Errorf("kpasswd version 0x%04x is not a reply version", version)
	case len(w.b) == 0:
		return rep, errors.New("kpasswd reply without a message")
	case w.b[0] == 0x60|krbPriv:
		rep.kind = "KRB-PRIV"
		return rep, nil
	}
	return parseKpasswdError(w.b)
}

func parseKpasswdError(b []byte) (kpasswdReply, error) {
	rep := kpasswdReply{kind: "KRB-ERROR"}
	krb, err := parseKerberosReply(b)
	if err != nil {
		return rep, err
	}
	if krb.msgType != krbError {
		return rep, errors.New("kpasswd reply carries an AS-REP")
	}
	rep.krb = krb
	var e krbErrorMsg
	if _, err := asn1.UnmarshalWithParams(b, &e, "application,explicit,tag:30"); err == nil && len(e.EData) >= 2 {
		code := binary.BigEndian.Uint16(e.EData)
		rep.result = cmp.Or(kpasswdResults[code], fmt.Sprintf("result %d", code))
	}
	return rep, nil
}

// runKpasswd sends the change-password request and judges the reply: any
// well-formed error or KRB-PRIV proves a kpasswd server answers.
func runKpasswd(ctx context.Context, t probe.Target, o *KpasswdOptions, r *probe.Result) error {
	req := kpasswdRequest(kerberosRealm(o.Realm, t.Host))
	reply, err := exchange(ctx, &t, o.Transport, cmp.Or(t.Port, 464), req, kerberosFraming, r)
	if err != nil {
		return err
	}
	rep, err := parseKpasswdReply(reply)
	if err != nil {
		return replyError(r, "kpasswd", err)
	}
	r.SetDetail("kpasswd_reply", rep.kind)
	if rep.kind == "KRB-ERROR" {
		rep.krb.record(r)
	}
	if rep.result != "" {
		r.SetDetail("kpasswd_result", rep.result)
	}
	return nil
}
