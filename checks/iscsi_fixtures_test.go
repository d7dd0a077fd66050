package checks

import (
	"bytes"
	"encoding/hex"
	"fmt"
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
