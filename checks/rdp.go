package checks

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

// The rdp check sends an X.224 Connection Request carrying an RDP
// Negotiation Request ([MS-RDPBCGR] 2.2.1.1), framed by TPKT (RFC 1006),
// and reads the Connection Confirm: the security protocol the server
// selected, or its negotiation failure. Nothing is sent after it.
var rdpKind = register(Spec[RDPOptions]{
	Name:        "rdp",
	DefaultPort: 3389,
	Transport:   probe.TCP,
	Summary:     "RDP connection request: the security protocol the server selects",
	Defaults:    func() *RDPOptions { return &RDPOptions{Protocols: []string{"tls", "credssp"}} },
	Hints:       []Hint{{App: "rdp"}},
	Run:         runRDP,
})

// DetailRDPProtocol is the security protocol the server selected.
const DetailRDPProtocol = "rdp_protocol"

// RDPOptions are the options of the rdp check.
type RDPOptions struct {
	// Protocols are the security protocols requested: tls, credssp
	// (Network Level Authentication). Empty requests standard RDP
	// security only.
	Protocols []string `yaml:"protocols"`

	requested uint32
}

// rdpProtocols are the protocol flags of [MS-RDPBCGR] 2.2.1.1.1.
var rdpProtocols = map[string]uint32{"tls": 0x1, "credssp": 0x2}

// Validate turns the protocol names into flags.
func (o *RDPOptions) Validate() error {
	o.requested = 0
	var errs []error
	for _, p := range o.Protocols {
		f, ok := rdpProtocols[p]
		if !ok {
			errs = append(errs, fmt.Errorf("protocols: %q: want tls or credssp", p))
		}
		o.requested |= f
	}
	return errors.Join(errs...)
}

// rdpMaxTPKT bounds the Connection Confirm read: 19 bytes in practice.
const rdpMaxTPKT = 256

func runRDP(ctx context.Context, t probe.Target, o *RDPOptions, r *probe.Result) error {
	return talk(ctx, &t, r, rdpMaxTPKT, func(c io.ReadWriter) error {
		if err := send("rdp", c, rdpConnectionRequest(o.requested)); err != nil {
			return err
		}
		var h [4]byte
		if err := readAnswer("rdp", c, h[:]); err != nil {
			return err
		}
		n, err := rdpTPKTLength(h)
		if err != nil {
			return err
		}
		pdu := make([]byte, n-4)
		if err := readAnswer("rdp", c, pdu); err != nil {
			return err
		}
		selected, err := parseRDPConfirm(pdu)
		if err != nil {
			return err
		}
		r.SetDetail(DetailRDPProtocol, rdpProtocolName(selected))
		if selected&^o.requested != 0 {
			return badAnswer("rdp", "the server selected %s, which was not requested", rdpProtocolName(selected))
		}
		return nil
	})
}

// rdpConnectionRequest is a TPKT-framed X.224 Connection Request with an
// RDP Negotiation Request for the protocols in requested.
func rdpConnectionRequest(requested uint32) []byte {
	b := []byte{
		3, 0, 0, 19, // TPKT: version 3, length 19
		14, 0xe0, 0, 0, 0, 0, 0, // X.224 CR: length indicator, code, DST-REF, SRC-REF, class 0
		1, 0, 8, 0, 0, 0, 0, 0, // RDP_NEG_REQ: type 1, flags, length 8, requestedProtocols
	}
	binary.LittleEndian.PutUint32(b[15:], requested)
	return b
}

// rdpTPKTLength checks a TPKT header and returns the packet's length.
func rdpTPKTLength(h [4]byte) (int, error) {
	if h[0] != 3 || h[1] != 0 {
		return 0, badAnswer("rdp", "not a TPKT packet: %s", quoteBytes(h[:], 4))
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < 4+7 || n > rdpMaxTPKT {
		return 0, badAnswer("rdp", "a TPKT packet of %d bytes, not a connection confirm", n)
	}
	return n, nil
}

// rdpFailures are the failure codes of an RDP Negotiation Failure
// ([MS-RDPBCGR] 2.2.1.2.2).
var rdpFailures = map[uint32]string{
	1: "the server requires TLS",
	2: "the server does not allow TLS",
	3: "the server has no certificate for TLS",
	4: "inconsistent flags",
	5: "the server requires CredSSP (Network Level Authentication)",
	6: "the server requires TLS with user authentication",
}

// parseRDPConfirm parses the X.224 part of a Connection Confirm and returns
// the selected protocol (0, standard RDP security, when the server sends
// no negotiation response).
func parseRDPConfirm(pdu []byte) (uint32, error) {
	if len(pdu) < 7 || pdu[1]&0xf0 != 0xd0 || int(pdu[0]) != len(pdu)-1 {
		return 0, badAnswer("rdp", "not an X.224 connection confirm: %s", quoteBytes(pdu, 16))
	}
	neg := pdu[7:]
	if len(neg) == 0 {
		return 0, nil
	}
	if len(neg) != 8 || binary.LittleEndian.Uint16(neg[2:]) != 8 {
		return 0, badAnswer("rdp", "a negotiation block of %d bytes, want 8", len(neg))
	}
	v := binary.LittleEndian.Uint32(neg[4:])
	switch neg[0] {
	case 2: // RDP_NEG_RSP
		return v, nil
	case 3: // RDP_NEG_FAILURE
		if reason, ok := rdpFailures[v]; ok {
			return 0, badAnswer("rdp", "negotiation failed: %s", reason)
		}
		return 0, badAnswer("rdp", "negotiation failed with code %d", v)
	}
	return 0, badAnswer("rdp", "negotiation block of type %d", neg[0])
}

// rdpProtocolName names a selected protocol: rdp, tls, credssp, or the
// flags of one this check does not know.
func rdpProtocolName(p uint32) string {
	names := map[uint32]string{0: "rdp", 0x1: "tls", 0x2: "credssp", 0x4: "rdstls", 0x8: "credssp_ex"}
	if n, ok := names[p]; ok {
		return n
	}
	var all []string
	for f, n := range names {
		if f != 0 && p&f != 0 {
			all = append(all, n)
		}
	}
	slices.Sort(all)
	return fmt.Sprintf("0x%x %s", p, strings.Join(all, "+"))
}
