package checks

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// fakeISCSI is an in-process iSCSI target on 127.0.0.1:0 that serves one
// connection with a scripted handler. wait returns once the handler is done,
// which is when the check has closed the connection.
type fakeISCSI struct {
	port int
	done chan struct{}
}

func (f *fakeISCSI) wait(t *testing.T) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("fake target did not finish")
	}
}

// startFakeISCSI listens on 127.0.0.1:0 and runs handle on the first
// connection in its own goroutine; the test's cleanup waits for it.
func startFakeISCSI(t *testing.T, handle func(ft *fakeTarget)) *fakeISCSI {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeISCSI{port: ln.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
	var once sync.Once
	go func() {
		defer close(f.done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		// A deadline on the fake itself: a broken check must not hang the test.
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		handle(&fakeTarget{t: t, c: c, rd: bufio.NewReader(c), statSN: 0x1000})
	}()
	t.Cleanup(func() {
		once.Do(func() { ln.Close() })
		<-f.done
	})
	return f
}

// fakeTarget is the handler's view of the connection.
type fakeTarget struct {
	t      *testing.T
	c      net.Conn
	rd     *bufio.Reader
	statSN uint32
	logins []iscsiLoginReq // every login request read, in order
}

// readLogin reads a Login Request and its keys; ok is false when the
// client closed the connection.
func (f *fakeTarget) readLogin() (iscsiLoginReq, []iscsiKV, bool) {
	p, err := readISCSIPDU(f.rd)
	if err != nil {
		return iscsiLoginReq{}, nil, false
	}
	req, err := parseISCSILoginReq(p)
	if err != nil {
		f.t.Errorf("fake target: %v", err)
		return req, nil, false
	}
	kvs, err := decodeISCSIText(req.Data)
	if err != nil {
		f.t.Errorf("fake target: login text: %v", err)
	}
	f.logins = append(f.logins, req)
	return req, kvs, true
}

// answer sends a Login Response to req with the given flags, status, TSIH
// and keys, echoing ISID and ITT.
func (f *fakeTarget) answer(req iscsiLoginReq, resp iscsiLoginResp, kvs ...iscsiKV) {
	resp.ISID, resp.ITT = req.ISID, req.ITT
	resp.StatSN, resp.ExpCmdSN, resp.MaxCmdSN = f.statSN, req.CmdSN, req.CmdSN+1
	f.statSN++
	if resp.Data == nil {
		resp.Data = encodeISCSIText(kvs)
	}
	f.write(resp.pdu())
}

func (f *fakeTarget) write(p iscsiPDU) { f.writeRaw(p.marshal()) }

func (f *fakeTarget) writeRaw(b []byte) {
	if _, err := f.c.Write(b); err != nil {
		f.t.Errorf("fake target: write: %v", err)
	}
}

// logout serves the Logout Request the check sends after a good login.
func (f *fakeTarget) logout() {
	p, err := readISCSIPDU(f.rd)
	if err != nil {
		f.t.Errorf("fake target: no logout request: %v", err)
		return
	}
	req, err := parseISCSILogoutReq(p)
	if err != nil {
		f.t.Errorf("fake target: %v", err)
		return
	}
	resp := iscsiLogoutResp{ITT: req.ITT, StatSN: f.statSN}
	f.statSN++
	f.write(resp.pdu())
	f.drain()
}

// drain reads until the client closes the connection.
func (f *fakeTarget) drain() { _, _ = io.Copy(io.Discard, f.rd) }

var (
	toStage1 = iscsiLoginResp{Transit: true, CSG: 0, NSG: 1}
	toStage3 = iscsiLoginResp{Transit: true, CSG: 1, NSG: 3, TSIH: 256}
)

// tgtLogin answers a two-stage login the way tgt does.
func (f *fakeTarget) tgtLogin() bool {
	req, _, ok := f.readLogin()
	if !ok {
		return false
	}
	f.answer(req, toStage1, iscsiKV{"TargetPortalGroupTag", "1"}, iscsiKV{"AuthMethod", "None"})
	req, _, ok = f.readLogin()
	if !ok {
		return false
	}
	f.answer(req, toStage3, iscsiKV{"HeaderDigest", "None"}, iscsiKV{"DataDigest", "None"})
	return true
}

func checkISCSIAt(t *testing.T, port int, timeout time.Duration, opts *ISCSIOptions) probe.Result {
	t.Helper()
	target := probe.Target{Host: "127.0.0.1", Port: port, Check: "iscsi", Timeout: timeout}
	if opts != nil {
		target.Options = opts
	}
	return Check(context.Background(), target)
}

func decodeISCSIOptions(t *testing.T, raw map[string]any) *ISCSIOptions {
	t.Helper()
	o, err := Decode("iscsi", raw)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*ISCSIOptions)
}

func wantOutcome(t *testing.T, r probe.Result, want probe.Outcome, errPart string) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %v, want %v (error: %v, details: %v)", r.Outcome, want, r.Err, r.Details)
	}
	if errPart == "" && r.Err != nil {
		t.Fatalf("error %v, want none", r.Err)
	}
	if errPart != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), errPart)) {
		t.Fatalf("error %v, want one containing %q", r.Err, errPart)
	}
}

func wantDetails(t *testing.T, r probe.Result, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := r.Details[k]; !ok || got != v {
			t.Errorf("detail %s = %q, want %q (all: %v)", k, got, v, r.Details)
		}
	}
}

func keysOf(kvs []iscsiKV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key + "=" + kv.Value
	}
	return out
}

func TestISCSIOptions(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(secretFile, []byte("s3cret-value-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := []map[string]any{
		nil,
		{"target": "iqn.2024-01.org.example:disk1"},
		{"target": "eui.0123456789abcdef", "initiator_name": "naa.0123456789abcdef0123456789abcdef"},
		{"send_targets": true, "expect_target": "iqn.2024-01.org.example:disk1"},
		{"chap_username": "alice", "chap_secret_file": secretFile},
	}
	for _, raw := range good {
		o, err := Decode("iscsi", raw)
		if err != nil {
			t.Errorf("%v: %v", raw, err)
			continue
		}
		if o.(*ISCSIOptions).InitiatorName == "" {
			t.Errorf("%v: no initiator name", raw)
		}
	}
	o := decodeISCSIOptions(t, map[string]any{"chap_username": "alice", "chap_secret_file": secretFile})
	if got, err := o.revealCHAP(); err != nil || string(got) != "s3cret-value-123" {
		t.Errorf("secret not read from the file: %v", err)
	}

	bad := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"target": "disk1"}, `iscsi options: target: "disk1": an iSCSI name starts with iqn., eui. or naa.`},
		{map[string]any{"target": "iqn.2024-01.org.Example:disk1"}, `iscsi options: target: "iqn.2024-01.org.Example:disk1": an iSCSI name has only lower-case letters, digits, '-', '.' and ':'`},
		{map[string]any{"target": "iqn.24-01.org.example"}, `iscsi options: target: "iqn.24-01.org.example": want iqn.yyyy-mm.naming-authority[:name]`},
		{map[string]any{"initiator_name": "eui.0123"}, `iscsi options: initiator_name: "eui.0123": want eui. and 16 hex digits`},
		{map[string]any{"expect_target": "iqn.2024-01.org.example:disk1"}, `iscsi options: expect_target needs send_targets: true`},
		{map[string]any{"target": "iqn.2024-01.org.example:disk1", "send_targets": true}, `iscsi options: send_targets works in a discovery session: leave target empty`},
		{map[string]any{"chap_username": "alice"}, `iscsi options: chap_secret: not set: give chap_secret_file or chap_secret_env`},
		{map[string]any{"chap_secret_env": "X"}, `iscsi options: chap_secret_file/chap_secret_env need chap_username`},
		{map[string]any{"chap_password": "x"}, `iscsi options: unknown option "chap_password" (known: chap_secret_env, chap_secret_file, chap_username, expect_target, initiator_name, send_targets, target); iscsi takes no such secret, and secrets are only given as <option>_file or <option>_env`},
	}
	for _, tc := range bad {
		_, err := Decode("iscsi", tc.raw)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v:\n got %v\nwant %s", tc.raw, err, tc.want)
		}
	}
}

// Options built in code (not decoded) still get their secret read, and a
// missing secret is an error before any traffic.
func TestISCSIOptionsInCode(t *testing.T) {
	r := checkISCSIAt(t, 1, time.Second, &ISCSIOptions{CHAPUsername: "alice"})
	if r.Err == nil || !strings.Contains(r.Err.Error(), "chap_secret: not set") {
		t.Fatalf("error %v, want the missing secret named", r.Err)
	}
	if r.Phases[probe.PhaseConnect] != 0 {
		t.Errorf("connected although the options are invalid")
	}
	if r.Outcome != probe.OutcomeProtocolError {
		t.Errorf("outcome %v, want protocol_error", r.Outcome)
	}
}
