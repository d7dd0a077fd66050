package checks

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// PROTOCOLS.md §1.1: the exact bytes of a one-PDU discovery login that tgt
// accepted (what libiscsi sends). The encoder must produce them.
func TestISCSILoginRequestEncoding(t *testing.T) {
	want := readISCSIExchange(t, filepath.Join("testdata", "iscsi", "libiscsi-login-discovery.hex")).requests[0]
	req := iscsiLoginReq{
		Transit: true, CSG: iscsiStageOperational, NSG: iscsiStageFull,
		ISID: iscsiFixtureISID, ITT: iscsiFixtureITT, CmdSN: 1,
		Data: encodeISCSIText([]iscsiKV{
			{"InitiatorName", "iqn.2024-01.org.example.lab:prober"},
			{"SessionType", "Discovery"},
			{"HeaderDigest", "None"},
			{"DataDigest", "None"},
			{"MaxRecvDataSegmentLength", "65536"},
		}),
	}
	got := req.pdu().marshal()
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs:\n got % x\nwant % x", got, want)
	}
	if len(got) != 48+136 || got[7] != 136 {
		t.Fatalf("length %d, DataSegmentLength %d: want 48+136", len(got), got[7])
	}
	p, err := readISCSIPDU(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseISCSILoginReq(p)
	if err != nil || !back.Transit || back.CSG != 1 || back.NSG != 3 || back.ISID != iscsiFixtureISID || back.ITT != 1 || back.CmdSN != 1 {
		t.Fatalf("decoded %+v, %v", back, err)
	}
}

// Padding: the data segment is padded with zeros to 4 bytes and
// DataSegmentLength counts the data without the padding.
func TestISCSIPadding(t *testing.T) {
	for n := range 9 {
		p := iscsiPDU{data: bytes.Repeat([]byte{'x'}, n)}
		b := p.marshal()
		if len(b)%4 != 0 || len(b) != 48+(n+3)/4*4 || int(b[7]) != n {
			t.Errorf("data %d: %d bytes, DataSegmentLength %d", n, len(b), b[7])
		}
		back, err := readISCSIPDU(bytes.NewReader(b))
		if err != nil || !bytes.Equal(back.data, p.data) {
			t.Errorf("data %d: read back %q, %v", n, back.data, err)
		}
	}
}

func TestISCSIText(t *testing.T) {
	kvs := []iscsiKV{{"TargetName", "iqn.2024-01.org.example:a"}, {"TargetAddress", "192.0.2.1:3260,1"}, {"TargetName", "iqn.2024-01.org.example:b"}, {"X", ""}}
	enc := encodeISCSIText(kvs)
	if want := "TargetName=iqn.2024-01.org.example:a\x00TargetAddress=192.0.2.1:3260,1\x00TargetName=iqn.2024-01.org.example:b\x00X=\x00"; string(enc) != want {
		t.Fatalf("encoded %q", enc)
	}
	back, err := decodeISCSIText(append(enc, 0, 0, 0)) // padding counted in by a sloppy target
	if err != nil || !slices.Equal(back, kvs) {
		t.Fatalf("decoded %v, %v", back, err)
	}
	if v, _ := iscsiTextValue(back, "TargetName"); v != "iqn.2024-01.org.example:b" {
		t.Errorf("last TargetName %q", v)
	}
	for _, bad := range []string{"novalue\x00", "=x\x00", "a key=x\x00", strings.Repeat("k", 64) + "=x\x00"} {
		if _, err := decodeISCSIText([]byte(bad)); err == nil || Classify(err, false) != probe.OutcomeProtocolError {
			t.Errorf("%q: %v, want a protocol error", bad, err)
		}
	}
}

func TestISCSIReadBounds(t *testing.T) {
	hdr := func(ahs byte, dlen int) []byte {
		b := make([]byte, 48)
		b[0] = iscsiOpLoginResp
		b[4] = ahs
		b[5], b[6], b[7] = byte(dlen>>16), byte(dlen>>8), byte(dlen)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"short header", hdr(0, 0)[:20], "unexpected EOF"},
		{"data cut", append(hdr(0, 8), 'a', 'b'), "unexpected EOF"},
		{"padding cut", append(hdr(0, 2), 'a', 'b'), "unexpected EOF"},
		{"AHS cut", append(hdr(2, 0), 1, 2, 3), "unexpected EOF"},
		{"over the limit", hdr(0, iscsiMaxData+1), "announces a 65537-byte data segment"},
		{"maximum", hdr(0, 0xffffff), "announces a 16777215-byte data segment"},
	} {
		_, err := readISCSIPDU(bytes.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// An AHS is skipped and the data after it read.
	in := append(hdr(1, 3), 9, 9, 9, 9, 'a', 'b', 'c', 0)
	p, err := readISCSIPDU(bytes.NewReader(in))
	if err != nil || string(p.data) != "abc" {
		t.Errorf("with AHS: %q, %v", p.data, err)
	}
	// The limit itself is accepted.
	in = append(hdr(0, iscsiMaxData), make([]byte, iscsiMaxData)...)
	if p, err := readISCSIPDU(bytes.NewReader(in)); err != nil || len(p.data) != iscsiMaxData {
		t.Errorf("at the limit: %d bytes, %v", len(p.data), err)
	}
}

// Every PDU of every fixture decodes, parses by its opcode, and encodes back
// to exactly the bytes on the wire.
func TestISCSIFixturesRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "iscsi", "*.hex"))
	if len(files) < len(iscsiExchanges)+1 {
		t.Fatalf("%d fixtures, want at least %d", len(files), len(iscsiExchanges)+1)
	}
	for _, f := range files {
		ex := readISCSIExchange(t, f)
		for i, b := range slices.Concat(ex.requests, ex.responses) {
			rd := bytes.NewReader(b)
			p, err := readISCSIPDU(rd)
			if err != nil || rd.Len() != 0 {
				t.Errorf("%s PDU %d: %v, %d bytes left", filepath.Base(f), i+1, err, rd.Len())
				continue
			}
			again, err := reencodeISCSI(p)
			if err != nil {
				t.Errorf("%s PDU %d: %v", filepath.Base(f), i+1, err)
				continue
			}
			if !bytes.Equal(again, b) {
				t.Errorf("%s PDU %d re-encodes differently:\n got % x\nwant % x", filepath.Base(f), i+1, again, b)
			}
			if _, err := decodeISCSIText(p.data); err != nil && p.opcode() != iscsiOpReject {
				t.Errorf("%s PDU %d text: %v", filepath.Base(f), i+1, err)
			}
		}
	}
}

// reencodeISCSI parses p by its opcode and marshals the result again.
func reencodeISCSI(p iscsiPDU) ([]byte, error) {
	var q iscsiPDU
	switch p.opcode() {
	case iscsiOpLoginReq:
		m, err := parseISCSILoginReq(p)
		if err != nil {
			return nil, err
		}
		q = m.pdu()
	case iscsiOpLoginResp:
		m, err := parseISCSILoginResp(p)
		if err != nil {
			return nil, err
		}
		q = m.pdu()
	case iscsiOpTextReq:
		m, err := parseISCSITextReq(p)
		if err != nil {
			return nil, err
		}
		q = m.pdu()
	case iscsiOpTextResp:
		m, err := parseISCSITextResp(p)
		if err != nil {
			return nil, err
		}
		q = m.pdu()
	case iscsiOpLogoutReq:
		m, err := parseISCSILogoutReq(p)
		if err != nil {
			return nil, err
		}
		q = m.pdu()
	case iscsiOpLogoutResp:
		m, err := parseISCSILogoutResp(p)
		if err != nil {
			return nil, err
		}
		q = m.pdu()
	case iscsiOpReject:
		m, err := parseISCSIReject(p)
		if err != nil {
			return nil, err
		}
		q = m.pdu()
	default:
		return nil, fmt.Errorf("opcode 0x%02x not handled", p.opcode())
	}
	return q.marshal(), nil
}

// FuzzDecodeISCSIPDU: whatever a target sends, reading and parsing a PDU
// never panics, never holds more than the limit, and what parses encodes
// back to the same header and data.
func FuzzDecodeISCSIPDU(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "iscsi", "*.hex"))
	for _, file := range files {
		ex := readISCSIExchange(f, file)
		for _, b := range slices.Concat(ex.requests, ex.responses) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := bytes.NewReader(in)
		p, err := readISCSIPDU(rd)
		if err != nil {
			if o := Classify(err, false); o != probe.OutcomeProtocolError {
				t.Fatalf("read error %v classified %v", err, o)
			}
			return
		}
		if len(p.data) > iscsiMaxData || len(p.data) != p.dataLen() {
			t.Fatalf("data of %d bytes for DataSegmentLength %d", len(p.data), p.dataLen())
		}
		_, _ = decodeISCSIText(p.data)
		again, err := reencodeISCSI(p)
		if err != nil {
			return // an opcode the prober never parses
		}
		q, err := readISCSIPDU(bytes.NewReader(again))
		if err != nil || !bytes.Equal(q.data, p.data) || q.opcode() != p.opcode() {
			t.Fatalf("re-encoded PDU reads back as %v, %v", q, err)
		}
		// A second round is stable: parse∘marshal is idempotent.
		third, _ := reencodeISCSI(q)
		if !bytes.Equal(third, again) {
			t.Fatalf("unstable encoding:\n% x\n% x", again, third)
		}
	})
}

// scriptConn is a net.Conn whose peer says script and nothing more, and
// takes whatever is written.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	rd       *bytes.Reader
}

func newScriptConn(script []byte) *scriptConn { return &scriptConn{rd: bytes.NewReader(script)} }

func (c *scriptConn) Read(b []byte) (int, error)       { return c.rd.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzISCSISession: whatever a target answers (the fuzz input is all it
// says, with the ITT of the check patched in), the whole session ends in
// ok, auth_error or protocol_error, and ok only with a TSIH.
func FuzzISCSISession(f *testing.F) {
	for _, spec := range iscsiExchanges {
		ex := readISCSIExchange(f, filepath.Join("testdata", "iscsi", spec.file))
		f.Add(bytes.Join(ex.responses, nil), spec.wrongSecret || spec.options["chap_username"] != nil)
	}
	f.Fuzz(func(t *testing.T, script []byte, chap bool) {
		o := newISCSIOptions()
		var secret []byte
		if chap {
			o.Target, o.CHAPUsername, secret = labCHAP, "labchap", []byte("fuzz-secret")
		} else {
			o.SendTargets = true
		}
		s := newISCSISession(newScriptConn(script), o, secret)
		s.itt = iscsiFixtureITT
		var r probe.Result
		err := s.run(context.Background(), &r)
		switch o := Classify(err, false); o {
		case probe.OutcomeOK:
			if s.tsih == 0 && r.Details["redirect"] == "" {
				t.Fatalf("ok without TSIH or redirect: %v", r.Details)
			}
		case probe.OutcomeAuthError, probe.OutcomeProtocolError:
		default:
			t.Fatalf("outcome %v from a script: %v", o, err)
		}
	})
}
