package checks

// iSCSI PDU encoding and decoding (RFC 7143 §11): the Basic Header Segment
// of the PDUs a login probe sends and receives, and the key=value text of
// their data segments. Only what a prober needs: no digests (they are never
// negotiated), no SCSI commands.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

// iscsiBHSLen is the size of the Basic Header Segment of every PDU.
const iscsiBHSLen = 48

// iscsiMaxData is the largest data segment the prober accepts from a
// target, and the MaxRecvDataSegmentLength it declares. A target that
// announces more is refused before anything is allocated.
const iscsiMaxData = 64 << 10

// Opcodes (byte 0, low six bits).
const (
	iscsiOpLoginReq   = 0x03
	iscsiOpTextReq    = 0x04
	iscsiOpLogoutReq  = 0x06
	iscsiOpNOPIn      = 0x20
	iscsiOpLoginResp  = 0x23
	iscsiOpTextResp   = 0x24
	iscsiOpLogoutResp = 0x26
	iscsiOpReject     = 0x3f

	iscsiOpImmediate = 0x40 // the I bit of byte 0 in initiator PDUs
	iscsiOpMask      = 0x3f
)

// Flag bits of byte 1.
const (
	iscsiFlagFinal    = 0x80 // F (text, logout) or T (login: transit)
	iscsiFlagContinue = 0x40 // C: the text continues in the next PDU
)

// iscsiReservedTag is the Target Transfer Tag (and, for unsolicited target PDUs,
// Initiator Task Tag) meaning "none".
const iscsiReservedTag = 0xffffffff

// Login stages (CSG/NSG, RFC 7143 §11.12.3).
const (
	iscsiStageSecurity    = 0
	iscsiStageOperational = 1
	iscsiStageFull        = 3
)

// iscsiPDU is one PDU as it travels: the BHS and the data segment without its
// padding. Additional header segments are skipped on read and never sent.
type iscsiPDU struct {
	bhs  [iscsiBHSLen]byte
	data []byte
}

func (p iscsiPDU) opcode() byte { return p.bhs[0] & iscsiOpMask }

// dataLen is the DataSegmentLength field (24 bits).
func (p iscsiPDU) dataLen() int {
	return int(p.bhs[5])<<16 | int(p.bhs[6])<<8 | int(p.bhs[7])
}

// marshal returns the PDU's wire form: BHS, data, zero padding to 4 bytes.
// DataSegmentLength is set from the data.
func (p iscsiPDU) marshal() []byte {
	n := len(p.data)
	b := make([]byte, iscsiBHSLen, iscsiBHSLen+n+3)
	copy(b, p.bhs[:])
	b[4] = 0 // TotalAHSLength: no AHS is ever sent
	b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n)
	b = append(b, p.data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// readISCSIPDU reads one PDU. It never allocates more than iscsiMaxData for
// the data segment: a larger DataSegmentLength is a protocol error found from
// the header alone. A clean EOF before the first byte is io.EOF; a PDU cut
// short is io.ErrUnexpectedEOF.
func readISCSIPDU(r io.Reader) (iscsiPDU, error) {
	p, err := readISCSIBHS(r)
	if err != nil {
		return iscsiPDU{}, err
	}
	return readISCSIData(r, p)
}

// readISCSIBHS reads the Basic Header Segment of the next PDU.
func readISCSIBHS(r io.Reader) (iscsiPDU, error) {
	var p iscsiPDU
	if _, err := io.ReadFull(r, p.bhs[:]); err != nil {
		return iscsiPDU{}, err
	}
	return p, nil
}

// readISCSIData reads the rest of the PDU whose header is p: its AHS, which
// is skipped (at most 1020 bytes by the field's size), and its data segment
// with padding, after checking the announced length against iscsiMaxData.
func readISCSIData(r io.Reader, p iscsiPDU) (iscsiPDU, error) {
	n := p.dataLen()
	if n > iscsiMaxData {
		return iscsiPDU{}, iscsiBad("PDU opcode 0x%02x announces a %d-byte data segment, more than the %d bytes accepted",
			p.opcode(), n, iscsiMaxData)
	}
	if ahs := int64(p.bhs[4]) * 4; ahs > 0 {
		if _, err := io.CopyN(io.Discard, r, ahs); err != nil {
			return iscsiPDU{}, iscsiNoEOF(err)
		}
	}
	if n > 0 {
		buf := make([]byte, (n+3)&^3)
		if _, err := io.ReadFull(r, buf); err != nil {
			return iscsiPDU{}, iscsiNoEOF(err)
		}
		p.data = buf[:n:n]
	}
	return p, nil
}

// iscsiNoEOF turns an EOF inside a PDU into io.ErrUnexpectedEOF.
func iscsiNoEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func iscsiBad(format string, args ...any) error {
	return Fail(probe.OutcomeProtocolError, format, args...)
}

func iscsiWantOpcode(p iscsiPDU, op byte, name string) error {
	if got := p.opcode(); got != op {
		return iscsiBad("expected a %s (opcode 0x%02x), got opcode 0x%02x", name, op, got)
	}
	return nil
}

// iscsiLoginReq is a Login Request (RFC 7143 §11.12).
type iscsiLoginReq struct {
	Transit, Continue bool
	CSG, NSG          uint8
	VersionMax        uint8
	VersionMin        uint8
	ISID              [6]byte
	TSIH              uint16
	ITT               uint32
	CID               uint16
	CmdSN             uint32
	ExpStatSN         uint32
	Data              []byte
}

func iscsiStageFlags(transit, cont bool, csg, nsg uint8) byte {
	f := (csg&3)<<2 | nsg&3
	if transit {
		f |= iscsiFlagFinal
	}
	if cont {
		f |= iscsiFlagContinue
	}
	return f
}

func (m *iscsiLoginReq) pdu() iscsiPDU {
	var p iscsiPDU
	p.bhs[0] = iscsiOpImmediate | iscsiOpLoginReq
	p.bhs[1] = iscsiStageFlags(m.Transit, m.Continue, m.CSG, m.NSG)
	p.bhs[2], p.bhs[3] = m.VersionMax, m.VersionMin
	copy(p.bhs[8:14], m.ISID[:])
	binary.BigEndian.PutUint16(p.bhs[14:], m.TSIH)
	binary.BigEndian.PutUint32(p.bhs[16:], m.ITT)
	binary.BigEndian.PutUint16(p.bhs[20:], m.CID)
	binary.BigEndian.PutUint32(p.bhs[24:], m.CmdSN)
	binary.BigEndian.PutUint32(p.bhs[28:], m.ExpStatSN)
	p.data = m.Data
	return p
}

// iscsiLoginResp is a Login Response (RFC 7143 §11.13).
type iscsiLoginResp struct {
	Transit, Continue bool
	CSG, NSG          uint8
	VersionMax        uint8
	VersionActive     uint8
	ISID              [6]byte
	TSIH              uint16
	ITT               uint32
	StatSN            uint32
	ExpCmdSN          uint32
	MaxCmdSN          uint32
	StatusClass       uint8
	StatusDetail      uint8
	Data              []byte
}

// Status returns class<<8 | detail.
func (m *iscsiLoginResp) Status() uint16 { return uint16(m.StatusClass)<<8 | uint16(m.StatusDetail) }

func parseISCSILoginResp(p iscsiPDU) (iscsiLoginResp, error) {
	if err := iscsiWantOpcode(p, iscsiOpLoginResp, "Login Response"); err != nil {
		return iscsiLoginResp{}, err
	}
	h := p.bhs[:]
	m := iscsiLoginResp{
		Transit: h[1]&iscsiFlagFinal != 0, Continue: h[1]&iscsiFlagContinue != 0,
		CSG: h[1] >> 2 & 3, NSG: h[1] & 3,
		VersionMax: h[2], VersionActive: h[3],
		TSIH: binary.BigEndian.Uint16(h[14:]), ITT: binary.BigEndian.Uint32(h[16:]),
		StatSN: binary.BigEndian.Uint32(h[24:]), ExpCmdSN: binary.BigEndian.Uint32(h[28:]), MaxCmdSN: binary.BigEndian.Uint32(h[32:]),
		StatusClass: h[36], StatusDetail: h[37],
		Data: p.data,
	}
	copy(m.ISID[:], h[8:14])
	return m, nil
}

// iscsiTextReq is a Text Request (RFC 7143 §11.10).
type iscsiTextReq struct {
	Final, Continue bool
	LUN             uint64
	ITT             uint32
	TTT             uint32
	CmdSN           uint32
	ExpStatSN       uint32
	Data            []byte
}

func iscsiFinalFlags(final, cont bool) byte {
	var f byte
	if final {
		f |= iscsiFlagFinal
	}
	if cont {
		f |= iscsiFlagContinue
	}
	return f
}

func (m *iscsiTextReq) pdu() iscsiPDU {
	var p iscsiPDU
	p.bhs[0] = iscsiOpImmediate | iscsiOpTextReq
	p.bhs[1] = iscsiFinalFlags(m.Final, m.Continue)
	binary.BigEndian.PutUint64(p.bhs[8:], m.LUN)
	binary.BigEndian.PutUint32(p.bhs[16:], m.ITT)
	binary.BigEndian.PutUint32(p.bhs[20:], m.TTT)
	binary.BigEndian.PutUint32(p.bhs[24:], m.CmdSN)
	binary.BigEndian.PutUint32(p.bhs[28:], m.ExpStatSN)
	p.data = m.Data
	return p
}

// iscsiTextResp is a Text Response (RFC 7143 §11.11).
type iscsiTextResp struct {
	Final, Continue bool
	LUN             uint64
	ITT             uint32
	TTT             uint32
	StatSN          uint32
	ExpCmdSN        uint32
	MaxCmdSN        uint32
	Data            []byte
}

func parseISCSITextResp(p iscsiPDU) (iscsiTextResp, error) {
	if err := iscsiWantOpcode(p, iscsiOpTextResp, "Text Response"); err != nil {
		return iscsiTextResp{}, err
	}
	h := p.bhs[:]
	return iscsiTextResp{
		Final: h[1]&iscsiFlagFinal != 0, Continue: h[1]&iscsiFlagContinue != 0,
		LUN: binary.BigEndian.Uint64(h[8:]), ITT: binary.BigEndian.Uint32(h[16:]), TTT: binary.BigEndian.Uint32(h[20:]),
		StatSN: binary.BigEndian.Uint32(h[24:]), ExpCmdSN: binary.BigEndian.Uint32(h[28:]), MaxCmdSN: binary.BigEndian.Uint32(h[32:]),
		Data: p.data,
	}, nil
}

// iscsiLogoutReq is a Logout Request (RFC 7143 §11.14). Reason 0 closes the
// session.
type iscsiLogoutReq struct {
	Reason    uint8
	ITT       uint32
	CID       uint16
	CmdSN     uint32
	ExpStatSN uint32
}

func (m *iscsiLogoutReq) pdu() iscsiPDU {
	var p iscsiPDU
	p.bhs[0] = iscsiOpImmediate | iscsiOpLogoutReq
	p.bhs[1] = iscsiFlagFinal | m.Reason&0x7f
	binary.BigEndian.PutUint32(p.bhs[16:], m.ITT)
	binary.BigEndian.PutUint16(p.bhs[20:], m.CID)
	binary.BigEndian.PutUint32(p.bhs[24:], m.CmdSN)
	binary.BigEndian.PutUint32(p.bhs[28:], m.ExpStatSN)
	return p
}

// iscsiLogoutResp is a Logout Response (RFC 7143 §11.15).
type iscsiLogoutResp struct {
	Response    uint8
	ITT         uint32
	StatSN      uint32
	ExpCmdSN    uint32
	MaxCmdSN    uint32
	Time2Wait   uint16
	Time2Retain uint16
}

func parseISCSILogoutResp(p iscsiPDU) (iscsiLogoutResp, error) {
	if err := iscsiWantOpcode(p, iscsiOpLogoutResp, "Logout Response"); err != nil {
		return iscsiLogoutResp{}, err
	}
	if len(p.data) != 0 {
		return iscsiLogoutResp{}, iscsiBad("Logout Response with a %d-byte data segment", len(p.data))
	}
	h := p.bhs[:]
	return iscsiLogoutResp{
		Response: h[2], ITT: binary.BigEndian.Uint32(h[16:]),
		StatSN: binary.BigEndian.Uint32(h[24:]), ExpCmdSN: binary.BigEndian.Uint32(h[28:]), MaxCmdSN: binary.BigEndian.Uint32(h[32:]),
		Time2Wait: binary.BigEndian.Uint16(h[40:]), Time2Retain: binary.BigEndian.Uint16(h[42:]),
	}, nil
}

// iscsiReject is a Reject (RFC 7143 §11.17); its data is the header of the
// rejected PDU.
type iscsiReject struct {
	Reason   uint8
	StatSN   uint32
	ExpCmdSN uint32
	MaxCmdSN uint32
	DataSN   uint32
	Data     []byte
}

func parseISCSIReject(p iscsiPDU) (iscsiReject, error) {
	if err := iscsiWantOpcode(p, iscsiOpReject, "Reject"); err != nil {
		return iscsiReject{}, err
	}
	h := p.bhs[:]
	return iscsiReject{
		Reason: h[2], StatSN: binary.BigEndian.Uint32(h[24:]), ExpCmdSN: binary.BigEndian.Uint32(h[28:]),
		MaxCmdSN: binary.BigEndian.Uint32(h[32:]), DataSN: binary.BigEndian.Uint32(h[36:]),
		Data: p.data,
	}, nil
}

// iscsiRejectReasons names the Reject reason codes (RFC 7143 §11.17.1).
var iscsiRejectReasons = map[uint8]string{
	0x02: "data digest error",
	0x03: "SNACK reject",
	0x04: "protocol error",
	0x05: "command not supported",
	0x06: "immediate command reject",
	0x07: "task in progress",
	0x08: "invalid data ack",
	0x09: "invalid PDU field",
	0x0a: "long operation reject",
	0x0b: "negotiation reset",
	0x0c: "waiting for logout",
}

func iscsiRejectReasonName(r uint8) string {
	if n, ok := iscsiRejectReasons[r]; ok {
		return n
	}
	return fmt.Sprintf("reason 0x%02x", r)
}

// iscsiStatusNames names the Login Response status codes, class<<8|detail
// (RFC 7143 §11.13.5).
var iscsiStatusNames = map[uint16]string{
	0x0000: "success",
	0x0101: "target moved temporarily",
	0x0102: "target moved permanently",
	0x0200: "initiator error",
	0x0201: "authentication failure",
	0x0202: "authorization failure",
	0x0203: "target not found",
	0x0204: "target removed",
	0x0205: "unsupported version",
	0x0206: "too many connections",
	0x0207: "missing parameter",
	0x0208: "cannot include connection in session",
	0x0209: "session type not supported",
	0x020a: "session does not exist",
	0x020b: "invalid request during login",
	0x0300: "target error",
	0x0301: "service unavailable",
	0x0302: "out of resources",
}

// iscsiStatusName names a status code; unknown ones by their class.
func iscsiStatusName(s uint16) string {
	if n, ok := iscsiStatusNames[s]; ok {
		return n
	}
	switch s >> 8 {
	case 1:
		return "redirection"
	case 2:
		return "initiator error"
	case 3:
		return "target error"
	}
	return "unknown status"
}

// iscsiKV is one key=value pair of a text data segment.
type iscsiKV struct{ Key, Value string }

// encodeISCSIText builds a text data segment: each pair as key=value and a NUL.
// Padding is added by iscsiPDU.marshal.
func encodeISCSIText(kvs []iscsiKV) []byte {
	var b bytes.Buffer
	for _, kv := range kvs {
		b.WriteString(kv.Key)
		b.WriteByte('=')
		b.WriteString(kv.Value)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// iscsiMaxKeyLen is the longest key RFC 7143 §6.1 allows.
const iscsiMaxKeyLen = 63

// decodeISCSIText parses a text data segment into its pairs, in order (keys may
// repeat: SendTargets answers repeat TargetName and TargetAddress). Empty
// items (trailing NULs) are skipped; an item without "=" or with an
// impossible key is a protocol error.
func decodeISCSIText(data []byte) ([]iscsiKV, error) {
	var kvs []iscsiKV
	for item := range bytes.SplitSeq(data, []byte{0}) {
		if len(item) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(item, []byte{'='})
		if !ok {
			return nil, iscsiBad("text segment item %q has no '='", iscsiTrunc(string(item), 40))
		}
		if len(k) == 0 || len(k) > iscsiMaxKeyLen || bytes.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r > '~' }) {
			return nil, iscsiBad("text segment has an invalid key %q", iscsiTrunc(string(k), 40))
		}
		kvs = append(kvs, iscsiKV{Key: string(k), Value: string(v)})
	}
	return kvs, nil
}

// iscsiTextValue returns the last value of key in kvs.
func iscsiTextValue(kvs []iscsiKV, key string) (string, bool) {
	v, ok := "", false
	for _, kv := range kvs {
		if kv.Key == key {
			v, ok = kv.Value, true
		}
	}
	return v, ok
}

// iscsiTrunc shortens s to at most n bytes for messages and makes it valid
// UTF-8.
func iscsiTrunc(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "?")
	}
	return strings.ToValidUTF8(s[:n], "?") + "..."
}
