package checks

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// The ISID and Initiator Task Tag of the fixtures (PROTOCOLS.md §1.1).
var iscsiFixtureISID = [6]byte{0x80, 0x12, 0x34, 0x56, 0x00, 0x01}

const iscsiFixtureITT = 1

// iscsiExchangeSpec is one exchange with tgt kept under testdata/iscsi: the
// options the check ran with, and its verdict.
type iscsiExchangeSpec struct {
	file, about string
	options     map[string]any // chap_secret_file is added by the test
	wrongSecret bool
	outcome     probe.Outcome
	details     map[string]string
}

const (
	labDisk1 = "iqn.2024-01.org.example.lab:disk1"
	labCHAP  = "iqn.2024-01.org.example.lab:chap"
)

var iscsiExchanges = []iscsiExchangeSpec{
	{
		file: "tgt-discovery-sendtargets.hex", about: "discovery session, SendTargets=All, logout",
		options: map[string]any{"send_targets": true, "expect_target": labDisk1},
		outcome: probe.OutcomeOK,
		details: map[string]string{
			"tsih": "", "status": "0x0000 success", "auth_method": "None", "target_portal_group": "1",
			"target_count": "2", "logout": "ok",
			"targets": labDisk1 + " (10.200.0.2:3260,1) " + labCHAP + " (10.200.0.2:3260,1)",
		},
	},
	{
		file: "tgt-normal-disk1.hex", about: "normal session to disk1, logout",
		options: map[string]any{"target": labDisk1},
		outcome: probe.OutcomeOK,
		details: map[string]string{"session_type": "normal", "status": "0x0000 success", "logout": "ok"},
	},
	{
		file: "tgt-normal-missing.hex", about: "normal session to a target tgt does not have",
		options: map[string]any{"target": "iqn.2024-01.org.example.lab:missing"},
		outcome: probe.OutcomeAuthError,
		details: map[string]string{"status": "0x0203 target not found", "reason": "target not found"},
	},
	{
		file: "tgt-chap-no-credentials.hex", about: "CHAP-bound target, AuthMethod=None",
		options: map[string]any{"target": labCHAP},
		outcome: probe.OutcomeAuthError,
		details: map[string]string{"status": "0x0201 authentication failure"},
	},
	{
		file: "tgt-chap-wrong-secret.hex", about: "CHAP-bound target, CHAP with a wrong secret",
		options:     map[string]any{"target": labCHAP, "chap_username": "labchap"},
		wrongSecret: true,
		outcome:     probe.OutcomeAuthError,
		details:     map[string]string{"status": "0x0201 authentication failure"},
	},
	{
		file: "tgt-chap.hex", about: "CHAP-bound target, CHAP with the right secret, logout",
		options: map[string]any{"target": labCHAP, "chap_username": "labchap"},
		outcome: probe.OutcomeOK,
		details: map[string]string{"auth_method": "CHAP", "status": "0x0000 success", "logout": "ok"},
	},
}

// iscsiExchange is the PDUs of one exchange, each direction in order.
type iscsiExchange struct {
	requests, responses [][]byte
}

var iscsiOpNames = map[byte]string{
	iscsiOpLoginReq: "Login Request", iscsiOpLoginResp: "Login Response",
	iscsiOpTextReq: "Text Request", iscsiOpTextResp: "Text Response",
	iscsiOpLogoutReq: "Logout Request", iscsiOpLogoutResp: "Logout Response",
	iscsiOpReject: "Reject", iscsiOpNOPIn: "NOP-In",
}

// formatISCSIExchange writes an exchange as commented hex: "> name" starts
// a PDU from the initiator, "< name" one from the target; requests and
// responses alternate as they did on the wire.
func formatISCSIExchange(spec iscsiExchangeSpec, ex iscsiExchange) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s.\n", spec.about)
	b.WriteString("# Captured from tgt in the lab (deploy/testlab) with the fixture ISID and ITT; rewrite with\n")
	b.WriteString("#   FLOWPROBE_LAB=/run/flowprobe-lab go test -tags lab -run LabISCSIFixtures ./checks/ -iscsi.capture\n")
	b.WriteString("# '>' initiator to target, '<' target to initiator; BHS on the first line, data after it.\n")
	pdu := func(dir string, p []byte) {
		fmt.Fprintf(&b, "%s %s\n", dir, iscsiOpNames[p[0]&iscsiOpMask])
		b.WriteString(strings.TrimSpace(fmt.Sprintf("% x", p[:16])) + "\n")
		b.WriteString(fmt.Sprintf("% x", p[16:32]) + "\n")
		b.WriteString(fmt.Sprintf("% x", p[32:48]) + "\n")
		for rest := p[iscsiBHSLen:]; len(rest) > 0; {
			n := min(len(rest), 16)
			fmt.Fprintf(&b, "%-48s # %s\n", fmt.Sprintf("% x", rest[:n]), printable(rest[:n]))
			rest = rest[n:]
		}
	}
	for i := range max(len(ex.requests), len(ex.responses)) {
		if i < len(ex.requests) {
			pdu(">", ex.requests[i])
		}
		if i < len(ex.responses) {
			pdu("<", ex.responses[i])
		}
	}
	return b.Bytes()
}

func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '.'
		}
		return r
	}, string(b))
}

// readISCSIExchange parses a file written by formatISCSIExchange (or by
// hand in the same form).
func readISCSIExchange(t testing.TB, path string) iscsiExchange {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ex iscsiExchange
	var cur *[]byte
	for n, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case line[0] == '>':
			ex.requests = append(ex.requests, nil)
			cur = &ex.requests[len(ex.requests)-1]
		case line[0] == '<':
			ex.responses = append(ex.responses, nil)
			cur = &ex.responses[len(ex.responses)-1]
		default:
			h, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
			if err != nil || cur == nil {
				t.Fatalf("%s:%d: bad hex line %q", path, n+1, line)
			}
			*cur = append(*cur, h...)
		}
	}
	return ex
}

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

// What tgt answered, field by field (PROTOCOLS.md §1.3).
func TestISCSITgtFixtures(t *testing.T) {
	load := func(name string) iscsiExchange {
		return readISCSIExchange(t, filepath.Join("testdata", "iscsi", name))
	}
	loginResp := func(b []byte) (iscsiLoginResp, []string) {
		t.Helper()
		p, err := readISCSIPDU(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseISCSILoginResp(p)
		if err != nil {
			t.Fatal(err)
		}
		kvs, err := decodeISCSIText(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return m, keysOf(kvs)
	}

	ex := load("tgt-discovery-sendtargets.hex")
	m, kvs := loginResp(ex.responses[0])
	if !m.Transit || m.CSG != 0 || m.NSG != 1 || m.TSIH != 0 || m.Status() != 0 || m.ISID != iscsiFixtureISID || m.ITT != iscsiFixtureITT ||
		!slices.Equal(kvs, []string{"TargetPortalGroupTag=1", "AuthMethod=None"}) {
		t.Errorf("discovery, security stage answer: %+v %q", m, kvs)
	}
	m, kvs = loginResp(ex.responses[1])
	if !m.Transit || m.CSG != 1 || m.NSG != 3 || m.TSIH == 0 || m.Status() != 0 ||
		!slices.Equal(kvs, []string{"HeaderDigest=None", "DataDigest=None"}) {
		t.Errorf("discovery, operational stage answer: %+v %q", m, kvs)
	}
	p, _ := readISCSIPDU(bytes.NewReader(ex.responses[2]))
	tr, err := parseISCSITextResp(p)
	text, _ := decodeISCSIText(tr.Data)
	if err != nil || !tr.Final || tr.TTT != iscsiReservedTag || len(iscsiParseTargets(text)) != 2 {
		t.Errorf("SendTargets answer: %+v %v %q", tr, err, keysOf(text))
	}
	p, _ = readISCSIPDU(bytes.NewReader(ex.responses[3]))
	if lr, err := parseISCSILogoutResp(p); err != nil || lr.Response != 0 {
		t.Errorf("logout answer: %+v %v", lr, err)
	}

	m, kvs = loginResp(load("tgt-normal-missing.hex").responses[0])
	if m.Status() != 0x0203 || len(kvs) != 0 {
		t.Errorf("missing target: status 0x%04x %q", m.Status(), kvs)
	}
	m, kvs = loginResp(load("tgt-chap-no-credentials.hex").responses[0])
	if m.Transit || m.Status() != 0x0201 || !slices.Contains(kvs, "AuthMethod=Reject") {
		t.Errorf("CHAP target without CHAP: %+v %q", m, kvs)
	}
	chap := load("tgt-chap.hex")
	_, kvs = loginResp(chap.responses[1])
	if len(kvs) != 3 || kvs[0] != "CHAP_A=5" || !strings.HasPrefix(kvs[1], "CHAP_I=") || !strings.HasPrefix(kvs[2], "CHAP_C=0x") {
		t.Errorf("CHAP challenge: %q", kvs)
	}
}

// The check against tgt's recorded answers: a fake target replays them (with
// the check's own ITT patched in) and compares every request with the
// recorded one, ISID and ITT aside.
func TestISCSIReplayTgt(t *testing.T) {
	for _, spec := range iscsiExchanges {
		t.Run(spec.file, func(t *testing.T) {
			ex := readISCSIExchange(t, filepath.Join("testdata", "iscsi", spec.file))
			raw := map[string]any{}
			for k, v := range spec.options {
				raw[k] = v
			}
			if _, ok := raw["chap_username"]; ok {
				f := filepath.Join(t.TempDir(), "secret")
				if err := os.WriteFile(f, []byte("replayed-secret"), 0o600); err != nil {
					t.Fatal(err)
				}
				raw["chap_secret_file"] = f
			}
			var requests [][]byte
			srv := startFakeISCSI(t, func(f *fakeTarget) {
				for _, resp := range ex.responses {
					p, err := readISCSIPDU(f.rd)
					if err != nil {
						return
					}
					requests = append(requests, p.marshal())
					out := bytes.Clone(resp)
					copy(out[16:20], p.bhs[16:20]) // the check's ITT
					f.writeRaw(out)
				}
				f.drain()
			})
			r := checkISCSIAt(t, srv.port, 5*time.Second, decodeISCSIOptions(t, raw))
			srv.wait(t)
			if r.Outcome != spec.outcome {
				t.Fatalf("outcome %v (%v), want %v", r.Outcome, r.Err, spec.outcome)
			}
			exact := map[string]string{}
			for k, v := range spec.details {
				switch {
				case v != "":
					exact[k] = v
				case r.Details[k] == "":
					t.Errorf("detail %s missing", k) // present, value varies
				}
			}
			wantDetails(t, r, exact)
			if len(requests) != len(ex.requests) {
				t.Fatalf("%d requests, the recording has %d", len(requests), len(ex.requests))
			}
			for i := range requests {
				got, want := maskISCSIIDs(requests[i]), maskISCSIIDs(ex.requests[i])
				if bytes.Contains(got, []byte("CHAP_R=")) {
					// The response depends on the secret, which differs.
					got, want = got[:bytes.Index(got, []byte("CHAP_R="))], want[:bytes.Index(want, []byte("CHAP_R="))]
				}
				if !bytes.Equal(got, want) {
					t.Errorf("request %d differs from the recording:\n got % x\nwant % x", i+1, got, want)
				}
			}
		})
	}
}

func maskISCSIIDs(b []byte) []byte {
	b = bytes.Clone(b)
	clear(b[8:14])
	clear(b[16:20])
	return b
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
