package checks

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/flowprobe/flowprobe/probe"
)

// The smb check sends one SMB2 NEGOTIATE ([MS-SMB2] 2.2.3) offering the
// dialects 2.0.2 to 3.1.1 and reads the server's NEGOTIATE response
// (2.2.4): the dialect it chose and whether it requires signing. No
// session is set up, so no credentials are needed.
var smbKind = register(Spec[SMBOptions]{
	Name:        "smb",
	DefaultPort: 445,
	Transport:   probe.TCP,
	Summary:     "SMB2 NEGOTIATE: dialect and signing requirement",
	Defaults:    func() *SMBOptions { return &SMBOptions{NetBIOSSession: "auto"} },
	Hints:       []Hint{{App: "smb"}},
	Run:         runSMB,
})

// Details of the smb check.
const (
	DetailSMBDialect = "smb_dialect" // e.g. "3.1.1"
	DetailSMBSigning = "smb_signing" // "required" or "enabled"
)

// SMBOptions are the options of the smb check.
type SMBOptions struct {
	// NetBIOSSession says whether to open a NetBIOS session (RFC 1002
	// session request) before SMB: "auto" does on port 139 only,
	// "always", "never".
	NetBIOSSession string `yaml:"netbios_session"`
}

// Validate checks netbios_session.
func (o *SMBOptions) Validate() error {
	switch o.NetBIOSSession {
	case "":
		o.NetBIOSSession = "auto"
	case "auto", "always", "never":
	default:
		return fmt.Errorf("netbios_session %q: want auto, always or never", o.NetBIOSSession)
	}
	return nil
}

const (
	smbNetBIOSPort = 139
	// smbMaxMessage bounds the NEGOTIATE response read: it carries a
	// security blob and negotiate contexts, a few hundred bytes in practice.
	smbMaxMessage = 64 << 10
	smbHeaderLen  = 64
)

// smbDialects are the dialects offered, oldest first.
var smbDialects = []uint16{0x0202, 0x0210, 0x0300, 0x0302, 0x0311}

func runSMB(ctx context.Context, t probe.Target, o *SMBOptions, r *probe.Result) error {
	netbios := o.NetBIOSSession == "always" || o.NetBIOSSession == "auto" && t.Port == smbNetBIOSPort
	return talk(ctx, &t, r, 4+smbMaxMessage+8, func(c io.ReadWriter) error {
		if netbios {
			if err := smbNetBIOSSession(c); err != nil {
				return err
			}
		}
		if err := send("smb", c, smbNegotiateRequest()); err != nil {
			return err
		}
		msg, err := smbReadMessage(c)
		if err != nil {
			return err
		}
		neg, err := parseSMBNegotiate(msg)
		if err != nil {
			return err
		}
		r.SetDetail(DetailSMBDialect, neg.dialectName())
		r.SetDetail(DetailSMBSigning, neg.signing())
		return nil
	})
}

// smbNegotiateRequest is a NetBIOS-framed SMB2 NEGOTIATE request. Offering
// 3.1.1 requires a preauth integrity context (SHA-512 with a random salt).
func smbNegotiateRequest() []byte {
	le := binary.LittleEndian
	const bodyLen = 36
	dialectsEnd := smbHeaderLen + bodyLen + 2*len(smbDialects)
	ctxOff := (dialectsEnd + 7) &^ 7 // contexts are 8-byte aligned
	const saltLen = 32
	ctxData := 2 + 2 + 2 + saltLen
	m := make([]byte, ctxOff+8+ctxData)

	copy(m[0:4], "\xfeSMB")
	le.PutUint16(m[4:], smbHeaderLen) // StructureSize
	le.PutUint16(m[12:], 0)           // Command: NEGOTIATE
	le.PutUint16(m[14:], 1)           // CreditRequest

	b := m[smbHeaderLen:]
	le.PutUint16(b[0:], bodyLen)                  // StructureSize
	le.PutUint16(b[2:], uint16(len(smbDialects))) // DialectCount
	le.PutUint16(b[4:], 1)                        // SecurityMode: signing enabled
	_, _ = rand.Read(b[12:28])                    // ClientGuid
	le.PutUint32(b[28:], uint32(ctxOff))          // NegotiateContextOffset
	le.PutUint16(b[32:], 1)                       // NegotiateContextCount
	for i, d := range smbDialects {
		le.PutUint16(b[bodyLen+2*i:], d)
	}

	c := m[ctxOff:]
	le.PutUint16(c[0:], 1) // SMB2_PREAUTH_INTEGRITY_CAPABILITIES
	le.PutUint16(c[2:], uint16(ctxData))
	le.PutUint16(c[8:], 1)        // HashAlgorithmCount
	le.PutUint16(c[10:], saltLen) // SaltLength
	le.PutUint16(c[12:], 1)       // SHA-512
	_, _ = rand.Read(c[14 : 14+saltLen])

	return append(netBIOSLength(len(m)), m...)
}

// netBIOSLength is the 4-byte header of a session message of n bytes
// (RFC 1002 4.3.6; [MS-SMB2] 2.1 over direct TCP).
func netBIOSLength(n int) []byte {
	return []byte{0, byte(n >> 16), byte(n >> 8), byte(n)}
}

// smbReadMessage reads one session message and returns its payload.
func smbReadMessage(rd io.Reader) ([]byte, error) {
	var h [4]byte
	if err := readAnswer("smb", rd, h[:]); err != nil {
		return nil, err
	}
	if h[0] != 0 {
		return nil, badAnswer("smb", "not an SMB session message: %s", quoteBytes(h[:], 4))
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if n > smbMaxMessage {
		return nil, badAnswer("smb", "a message of %d bytes, over the %d bytes a negotiate response needs", n, smbMaxMessage)
	}
	msg := make([]byte, n)
	if err := readAnswer("smb", rd, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// smbNegotiate is what the check reads from a NEGOTIATE response.
type smbNegotiate struct {
	dialect      uint16
	securityMode uint16
}

func (n smbNegotiate) dialectName() string {
	return fmt.Sprintf("%d.%d.%d", n.dialect>>8, n.dialect>>4&0xf, n.dialect&0xf)
}

func (n smbNegotiate) signing() string {
	if n.securityMode&0x2 != 0 {
		return "required"
	}
	return "enabled"
}

// parseSMBNegotiate parses the payload of the server's answer to the
// NEGOTIATE request.
func parseSMBNegotiate(msg []byte) (smbNegotiate, error) {
	le := binary.LittleEndian
	switch {
	case len(msg) >= 4 && string(msg[:4]) == "\xffSMB":
		return smbNegotiate{}, badAnswer("smb", "the server speaks SMB1 only")
	case len(msg) < 4 || string(msg[:4]) != "\xfeSMB":
		return smbNegotiate{}, badAnswer("smb", "not SMB: %s", quoteBytes(msg, 16))
	case len(msg) < smbHeaderLen+8:
		return smbNegotiate{}, badAnswer("smb", "a response of %d bytes, too short for NEGOTIATE", len(msg))
	case le.Uint16(msg[12:]) != 0 || le.Uint32(msg[16:])&1 == 0:
		return smbNegotiate{}, badAnswer("smb", "answer to command %d, not a NEGOTIATE response", le.Uint16(msg[12:]))
	}
	if status := le.Uint32(msg[8:]); status != 0 {
		return smbNegotiate{}, badAnswer("smb", "NEGOTIATE failed with status 0x%08x", status)
	}
	b := msg[smbHeaderLen:]
	if le.Uint16(b) != 65 {
		return smbNegotiate{}, badAnswer("smb", "NEGOTIATE response of structure size %d, want 65", le.Uint16(b))
	}
	n := smbNegotiate{securityMode: le.Uint16(b[2:]), dialect: le.Uint16(b[4:])}
	for _, d := range smbDialects {
		if d == n.dialect {
			return n, nil
		}
	}
	return smbNegotiate{}, badAnswer("smb", "the server chose dialect 0x%04x, which was not offered", n.dialect)
}

// smbNetBIOSSession opens a NetBIOS session on port 139 (RFC 1002 4.3.2)
// to the name every SMB server answers, *SMBSERVER.
func smbNetBIOSSession(c io.ReadWriter) error {
	req := append([]byte{0x81, 0, 0, 68}, netBIOSName("*SMBSERVER", 0x20)...)
	req = append(req, netBIOSName("FLOWPROBE", 0x00)...)
	if err := send("smb", c, req); err != nil {
		return err
	}
	var h [4]byte
	if err := readAnswer("smb", c, h[:]); err != nil {
		return err
	}
	switch h[0] {
	case 0x82: // positive session response
		return nil
	case 0x83:
		var code [1]byte
		if err := readAnswer("smb", c, code[:]); err != nil {
			return err
		}
		return badAnswer("smb", "NetBIOS session refused: %s", netBIOSRefusal(code[0]))
	}
	return badAnswer("smb", "not a NetBIOS session response: %s", quoteBytes(h[:], 4))
}

// netBIOSName is name in first-level encoding (RFC 1001 14.1), as a
// length-prefixed label: 16 bytes (15 padded with spaces, then suffix),
// each split into two letters.
func netBIOSName(name string, suffix byte) []byte {
	raw := fmt.Sprintf("%-15s", name)[:15] + string(suffix)
	out := make([]byte, 0, 34)
	out = append(out, 32)
	for i := range len(raw) {
		out = append(out, 'A'+raw[i]>>4, 'A'+raw[i]&0xf)
	}
	return append(out, 0)
}

func netBIOSRefusal(code byte) string {
	switch code {
	case 0x80:
		return "not listening on the called name"
	case 0x81:
		return "not listening for the calling name"
	case 0x82:
		return "called name not present"
	case 0x83:
		return "insufficient resources"
	}
	return fmt.Sprintf("error 0x%02x", code)
}
