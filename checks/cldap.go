package checks

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/flowprobe/flowprobe/probe"
)

var cldapKind = register(Spec[CLDAPOptions]{
	Name:        "cldap",
	DefaultPort: 389,
	Transport:   probe.UDP,
	Summary:     "Connectionless LDAP search of the root DSE (the Active Directory LDAP ping)",
	Defaults:    newCLDAPOptions,
	Hints:       []Hint{{App: "cldap"}},
	Run:         runCLDAP,
})

// CLDAPOptions are the options of the cldap check.
type CLDAPOptions struct {
	// Filter is the search filter; a domain controller answers the LDAP
	// ping only for an AND of equality matches with NtVer.
	Filter string `yaml:"filter"`
	// Attribute is the attribute of the root DSE to read (Netlogon); the
	// reply must carry it.
	Attribute string `yaml:"attribute"`

	filter *ber.Packet
}

func newCLDAPOptions() *CLDAPOptions {
	return &CLDAPOptions{Filter: `(&(NtVer=\06\00\00\00))`, Attribute: "Netlogon"}
}

// Validate compiles the filter.
func (o *CLDAPOptions) Validate() error {
	var errs []error
	f, err := ldap.CompileFilter(o.Filter)
	if err != nil {
		errs = append(errs, fmt.Errorf("filter %q: %w", o.Filter, err))
	}
	o.filter = f
	if o.Attribute == "" || strings.ContainsAny(o.Attribute, " ()") {
		errs = append(errs, fmt.Errorf("attribute %q is not an attribute name", o.Attribute))
	}
	return errors.Join(errs...)
}

// cldapMaxMessages bounds the LDAP messages read from one reply.
const cldapMaxMessages = 16

// cldapRequest encodes the search of the root DSE with message ID id.
func cldapRequest(o *CLDAPOptions, id int64) []byte {
	u := func(tag ber.Tag, v any) *ber.Packet {
		return ber.Encode(ber.ClassUniversal, ber.TypePrimitive, tag, v, "")
	}
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	search := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "")
	search.AppendChild(u(ber.TagOctetString, ""))                                                       // base: the root DSE
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "")) // scope base
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "")) // never deref
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))    // size limit
	search.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, ""))    // time limit
	search.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	search.AppendChild(o.filter)
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	attrs.AppendChild(u(ber.TagOctetString, o.Attribute))
	search.AppendChild(attrs)
	msg.AppendChild(search)
	return msg.Bytes()
}

// cldapReply is what a valid reply says.
type cldapReply struct {
	values     [][]byte // of the attribute asked for
	resultCode int64
	diagnostic string
}

// parseCLDAPReply decodes the LDAP messages of one datagram answering
// message id: at most one search entry and then the search result done.
func parseCLDAPReply(b []byte, id int64, attribute string) (cldapReply, error) {
	var rep cldapReply
	rd := bytes.NewReader(b)
	for range cldapMaxMessages {
		p, err := ber.ReadPacket(rd)
		if err != nil {
			return rep, fmt.Errorf("not an LDAP message: %w", err)
		}
		if p.ClassType != ber.ClassUniversal || p.Tag != ber.TagSequence || len(p.Children) < 2 {
			return rep, errors.New("not an LDAP message")
		}
		gotID, ok := p.Children[0].Value.(int64)
		if !ok || gotID != id {
			return rep, fmt.Errorf("LDAP message ID %v does not match the request's %d", p.Children[0].Value, id)
		}
		op := p.Children[1]
		if op.ClassType != ber.ClassApplication {
			return rep, errors.New("not an LDAP message")
		}
		switch op.Tag {
		case ldap.ApplicationSearchResultEntry:
			if len(op.Children) < 2 {
				return rep, errors.New("malformed search entry")
			}
			for _, a := range op.Children[1].Children {
				if len(a.Children) == 2 && strings.EqualFold(ber.DecodeString(a.Children[0].Data.Bytes()), attribute) {
					for _, v := range a.Children[1].Children {
						rep.values = append(rep.values, v.Data.Bytes())
					}
				}
			}
		case ldap.ApplicationSearchResultDone:
			if len(op.Children) < 3 {
				return rep, errors.New("malformed search result")
			}
			code, ok := op.Children[0].Value.(int64)
			if !ok {
				return rep, errors.New("malformed search result code")
			}
			rep.resultCode = code
			rep.diagnostic = ber.DecodeString(op.Children[2].Data.Bytes())
			return rep, nil
		default:
			return rep, fmt.Errorf("LDAP operation %d is not a search result", op.Tag)
		}
		if rd.Len() == 0 {
			return rep, errors.New("the reply ends without a search result")
		}
	}
	return rep, fmt.Errorf("more than %d LDAP messages in one reply", cldapMaxMessages)
}

// netlogonOpcodes names the opcodes of the Netlogon attribute's value
// (MS-ADTS §6.3.1.9, §6.3.5).
var netlogonOpcodes = map[uint16]string{
	19: "LOGON_SAM_LOGON_RESPONSE", 21: "LOGON_SAM_PAUSE_RESPONSE",
	23: "LOGON_SAM_LOGON_RESPONSE_EX", 25: "LOGON_SAM_USER_UNKNOWN_EX",
}

// runCLDAP sends the LDAP ping and judges the reply.
func runCLDAP(ctx context.Context, t probe.Target, o *CLDAPOptions, r *probe.Result) error {
	id := int64(newXID() >> 1)
	reply, err := exchange(ctx, &t, "udp", cmp.Or(t.Port, 389), cldapRequest(o, id), streamFraming{}, r)
	if err != nil {
		return err
	}
	rep, err := parseCLDAPReply(reply, id, o.Attribute)
	if err != nil {
		return replyError(r, "cldap", err)
	}
	r.SetDetail("result_code", fmt.Sprint(rep.resultCode))
	if rep.resultCode != 0 {
		return replyError(r, "cldap", fmt.Errorf("LDAP result %d (%s) %s", rep.resultCode,
			ldap.LDAPResultCodeMap[uint16(rep.resultCode)], firstLine([]byte(rep.diagnostic)))) //nolint:gosec // a name lookup
	}
	if len(rep.values) == 0 {
		return replyError(r, "cldap", fmt.Errorf("no %s attribute in the reply", o.Attribute))
	}
	if strings.EqualFold(o.Attribute, "Netlogon") && len(rep.values[0]) >= 2 {
		op := binary.LittleEndian.Uint16(rep.values[0])
		r.SetDetail("netlogon", cmp.Or(netlogonOpcodes[op], fmt.Sprintf("opcode %d", op)))
	}
	return nil
}
