package checks

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
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

func TestISCSIDiscoveryLogin(t *testing.T) {
	var reqs []iscsiLoginReq
	var texts [][]string
	srv := startFakeISCSI(t, func(f *fakeTarget) {
		for _, resp := range []struct {
			r   iscsiLoginResp
			kvs []iscsiKV
		}{
			{toStage1, []iscsiKV{{"TargetPortalGroupTag", "1"}, {"AuthMethod", "None"}}},
			{toStage3, []iscsiKV{{"HeaderDigest", "None"}, {"DataDigest", "None"}}},
		} {
			req, kvs, ok := f.readLogin()
			if !ok {
				return
			}
			reqs = append(reqs, req)
			texts = append(texts, keysOf(kvs))
			f.answer(req, resp.r, resp.kvs...)
		}
		f.logout()
	})
	r := checkISCSIAt(t, srv.port, 5*time.Second, nil)
	srv.wait(t)
	wantOutcome(t, r, probe.OutcomeOK, "")
	wantDetails(t, r, map[string]string{
		"session_type": "discovery", "tsih": "256", "status": "0x0000 success",
		"auth_method": "None", "target_portal_group": "1", "logout": "ok",
	})
	if r.Phases[probe.PhaseConnect] == 0 || r.Phases[probe.PhaseRequest] == 0 {
		t.Errorf("phases %v: want connect and request timed", r.Phases)
	}

	if len(reqs) != 2 {
		t.Fatalf("%d login requests, want 2", len(reqs))
	}
	want := [][]string{
		{"InitiatorName=" + DefaultISCSIInitiatorName, "SessionType=Discovery", "AuthMethod=None"},
		{"HeaderDigest=None", "DataDigest=None", "MaxRecvDataSegmentLength=65536"},
	}
	for i := range want {
		if !slices.Equal(texts[i], want[i]) {
			t.Errorf("login %d keys %q, want %q", i+1, texts[i], want[i])
		}
	}
	first, second := reqs[0], reqs[1]
	if got := first.pdu().bhs[1]; got != 0x81 {
		t.Errorf("first login flags 0x%02x, want 0x81 (T, CSG 0, NSG 1)", got)
	}
	if got := second.pdu().bhs[1]; got != 0x87 {
		t.Errorf("second login flags 0x%02x, want 0x87 (T, CSG 1, NSG 3)", got)
	}
	if first.ISID[0]>>6 != 2 || first.ISID != second.ISID {
		t.Errorf("ISIDs % x, % x: want the random type (T=10), the same in every login", first.ISID, second.ISID)
	}
	if first.ITT != second.ITT || first.TSIH != 0 || first.ExpStatSN != 0 {
		t.Errorf("first login ITT 0x%x TSIH %d ExpStatSN %d; second ITT 0x%x", first.ITT, first.TSIH, first.ExpStatSN, second.ITT)
	}
	if second.ExpStatSN != 0x1001 {
		t.Errorf("second login ExpStatSN 0x%x, want the first response's StatSN+1 (0x1001)", second.ExpStatSN)
	}
}

// A target may answer T=0 (stay in the stage), split its text over PDUs
// with C=1, and propose operational keys of its own; the check answers and
// still logs in.
func TestISCSIContinuation(t *testing.T) {
	var answered []string
	srv := startFakeISCSI(t, func(f *fakeTarget) {
		req, _, ok := f.readLogin()
		if !ok {
			return
		}
		full := encodeISCSIText([]iscsiKV{{"TargetPortalGroupTag", "7"}, {"AuthMethod", "None"}})
		f.answer(req, iscsiLoginResp{Continue: true, Data: full[:10]})
		req, kvs, ok := f.readLogin()
		if !ok {
			return
		}
		if req.Transit || len(kvs) != 0 {
			f.t.Errorf("request after C=1: T=%v keys %v, want T=0 and no keys", req.Transit, kvs)
		}
		f.answer(req, iscsiLoginResp{Data: full[10:]}) // the rest; T=0: stay
		req, _, ok = f.readLogin()
		if !ok {
			return
		}
		f.answer(req, toStage1)
		req, _, ok = f.readLogin()
		if !ok {
			return
		}
		f.answer(req, iscsiLoginResp{CSG: 1},
			iscsiKV{"HeaderDigest", "None"}, iscsiKV{"MaxBurstLength", "262144"},
			iscsiKV{"X-example.org-Feature", "Yes"}, iscsiKV{"OFMarker", "No"})
		req, kvs, ok = f.readLogin()
		if !ok {
			return
		}
		answered = keysOf(kvs)
		f.answer(req, iscsiLoginResp{Transit: true, CSG: 1, NSG: 3, TSIH: 512})
		f.logout()
	})
	r := checkISCSIAt(t, srv.port, 5*time.Second, nil)
	srv.wait(t)
	wantOutcome(t, r, probe.OutcomeOK, "")
	wantDetails(t, r, map[string]string{"tsih": "512", "target_portal_group": "7"})
	want := []string{"MaxBurstLength=262144", "X-example.org-Feature=NotUnderstood", "OFMarker=NotUnderstood"}
	if !slices.Equal(answered, want) {
		t.Errorf("answers to the target's proposals %q, want %q", answered, want)
	}
}

// A target that never leaves the stage ends in protocol_error after the
// bounded number of login requests.
func TestISCSIEndlessLogin(t *testing.T) {
	n := 0
	srv := startFakeISCSI(t, func(f *fakeTarget) {
		for {
			req, _, ok := f.readLogin()
			if !ok {
				return
			}
			n++
			f.answer(req, iscsiLoginResp{})
		}
	})
	r := checkISCSIAt(t, srv.port, 5*time.Second, nil)
	srv.wait(t)
	wantOutcome(t, r, probe.OutcomeProtocolError, "not complete after 6 login requests")
	if n != iscsiMaxLoginPDUs {
		t.Errorf("%d login requests, want %d", n, iscsiMaxLoginPDUs)
	}
}

// chapTarget is a target that demands CHAP for a normal session, checks the
// response against secret, and records the keys it saw.
func chapTarget(secret string, seen *[][]string) func(f *fakeTarget) {
	return func(f *fakeTarget) {
		req, kvs, ok := f.readLogin()
		if !ok {
			return
		}
		*seen = append(*seen, keysOf(kvs))
		if am, _ := iscsiTextValue(kvs, "AuthMethod"); am != "CHAP,None" {
			f.answer(req, iscsiLoginResp{StatusClass: 2, StatusDetail: 1}, iscsiKV{"AuthMethod", "Reject"})
			return
		}
		f.answer(req, iscsiLoginResp{}, iscsiKV{"TargetPortalGroupTag", "1"}, iscsiKV{"AuthMethod", "CHAP"})
		req, kvs, ok = f.readLogin()
		if !ok {
			return
		}
		*seen = append(*seen, keysOf(kvs))
		challenge := []byte("0123456789abcdef")
		f.answer(req, iscsiLoginResp{}, iscsiKV{"CHAP_A", "5"}, iscsiKV{"CHAP_I", "7"},
			iscsiKV{"CHAP_C", "0x" + hex.EncodeToString(challenge)})
		req, kvs, ok = f.readLogin()
		if !ok {
			return
		}
		*seen = append(*seen, keysOf(kvs))
		sum := md5.Sum(slices.Concat([]byte{7}, []byte(secret), challenge))
		name, _ := iscsiTextValue(kvs, "CHAP_N")
		resp, _ := iscsiTextValue(kvs, "CHAP_R")
		if name != "alice" || resp != "0x"+hex.EncodeToString(sum[:]) || !req.Transit || req.NSG != 1 {
			f.answer(req, iscsiLoginResp{StatusClass: 2, StatusDetail: 1})
			return
		}
		f.answer(req, toStage1)
		req, _, ok = f.readLogin()
		if !ok {
			return
		}
		f.answer(req, iscsiLoginResp{Transit: true, CSG: 1, NSG: 3, TSIH: 768})
		f.logout()
	}
}

const chapSecretValue = "correct-horse-battery"

func chapOptions(t *testing.T, secret string) *ISCSIOptions {
	t.Helper()
	file := filepath.Join(t.TempDir(), "chap.secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return decodeISCSIOptions(t, map[string]any{
		"target": "iqn.2024-01.org.example:chap", "chap_username": "alice", "chap_secret_file": file,
	})
}

// noSecret fails the test if the secret shows anywhere a user can see.
func noSecret(t *testing.T, r probe.Result, o *ISCSIOptions, secret string) {
	t.Helper()
	var shown []string
	shown = append(shown, r.Error(), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), fmt.Sprintf("%v", *o))
	for k, v := range r.Details {
		shown = append(shown, k, v)
	}
	for _, s := range shown {
		if strings.Contains(s, secret) {
			t.Errorf("the CHAP secret shows in %q", s)
		}
	}
}

func TestISCSICHAP(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		var seen [][]string
		srv := startFakeISCSI(t, chapTarget(chapSecretValue, &seen))
		o := chapOptions(t, chapSecretValue)
		r := checkISCSIAt(t, srv.port, 5*time.Second, o)
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeOK, "")
		wantDetails(t, r, map[string]string{"session_type": "normal", "auth_method": "CHAP", "tsih": "768", "logout": "ok"})
		want := [][]string{
			{"InitiatorName=" + DefaultISCSIInitiatorName, "SessionType=Normal", "TargetName=iqn.2024-01.org.example:chap", "AuthMethod=CHAP,None"},
			{"CHAP_A=5"},
		}
		for i := range want {
			if i >= len(seen) || !slices.Equal(seen[i], want[i]) {
				t.Fatalf("login keys %q, want %q first", seen, want)
			}
		}
		noSecret(t, r, o, chapSecretValue)
	})
	t.Run("wrong secret", func(t *testing.T) {
		var seen [][]string
		srv := startFakeISCSI(t, chapTarget(chapSecretValue, &seen))
		o := chapOptions(t, "wrong-secret-value")
		r := checkISCSIAt(t, srv.port, 5*time.Second, o)
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeAuthError, "authentication failure (status 0x0201)")
		wantDetails(t, r, map[string]string{"status": "0x0201 authentication failure", "reason": "authentication failure"})
		noSecret(t, r, o, "wrong-secret-value")
	})
	t.Run("no credentials", func(t *testing.T) {
		var seen [][]string
		srv := startFakeISCSI(t, chapTarget(chapSecretValue, &seen))
		r := checkISCSIAt(t, srv.port, 5*time.Second, decodeISCSIOptions(t, map[string]any{"target": "iqn.2024-01.org.example:chap"}))
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeAuthError, "authentication failure")
	})
	t.Run("secret from env", func(t *testing.T) {
		var seen [][]string
		srv := startFakeISCSI(t, chapTarget(chapSecretValue, &seen))
		t.Setenv("FLOWPROBE_TEST_CHAP", chapSecretValue)
		o := decodeISCSIOptions(t, map[string]any{
			"target": "iqn.2024-01.org.example:chap", "chap_username": "alice", "chap_secret_env": "FLOWPROBE_TEST_CHAP",
		})
		r := checkISCSIAt(t, srv.port, 5*time.Second, o)
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeOK, "")
	})
}

// A failed login's status decides the outcome.
func TestISCSILoginStatus(t *testing.T) {
	for _, tc := range []struct {
		name          string
		class, detail uint8
		kvs           []iscsiKV
		want          probe.Outcome
		errPart       string
		details       map[string]string
	}{
		{"authentication failure", 2, 1, []iscsiKV{{"AuthMethod", "Reject"}}, probe.OutcomeAuthError,
			"authentication failure (status 0x0201)", map[string]string{"status": "0x0201 authentication failure", "reason": "authentication failure"}},
		{"authorization failure", 2, 2, nil, probe.OutcomeAuthError,
			"authorization failure (status 0x0202)", map[string]string{"status": "0x0202 authorization failure"}},
		{"not found", 2, 3, nil, probe.OutcomeAuthError,
			"target not found (status 0x0203", map[string]string{"status": "0x0203 target not found", "reason": "target not found"}},
		{"removed", 2, 4, nil, probe.OutcomeAuthError,
			"target not found (status 0x0204, target removed)", map[string]string{"reason": "target not found"}},
		{"missing parameter", 2, 7, nil, probe.OutcomeProtocolError,
			"missing parameter (status 0x0207)", map[string]string{"reason": "missing parameter"}},
		{"service unavailable", 3, 1, nil, probe.OutcomeProtocolError,
			"target error: service unavailable (status 0x0301)", map[string]string{"status": "0x0301 service unavailable"}},
		{"unknown target error", 3, 0x7f, nil, probe.OutcomeProtocolError,
			"target error: target error (status 0x037f)", nil},
		{"moved temporarily", 1, 1, []iscsiKV{{"TargetAddress", "192.0.2.7:3260,1"}}, probe.OutcomeOK,
			"", map[string]string{"target_address": "192.0.2.7:3260,1", "redirect": "target moved temporarily"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeISCSI(t, func(f *fakeTarget) {
				req, _, ok := f.readLogin()
				if !ok {
					return
				}
				f.answer(req, iscsiLoginResp{StatusClass: tc.class, StatusDetail: tc.detail}, tc.kvs...)
				// A target closes the connection after a failed login.
			})
			r := checkISCSIAt(t, srv.port, 5*time.Second, decodeISCSIOptions(t, map[string]any{"target": "iqn.2024-01.org.example:disk9"}))
			srv.wait(t)
			wantOutcome(t, r, tc.want, tc.errPart)
			wantDetails(t, r, tc.details)
		})
	}
}

// sendTargetsTarget logs in and answers SendTargets=All with text split
// over two Text Responses (TTT continuation), then serves the logout.
func sendTargetsTarget(f *fakeTarget) {
	if !f.tgtLogin() {
		return
	}
	full := encodeISCSIText([]iscsiKV{
		{"TargetName", "iqn.2024-01.org.example:disk1"},
		{"TargetAddress", "192.0.2.10:3260,1"},
		{"TargetAddress", "[2001:db8::10]:3260,1"},
		{"TargetName", "iqn.2024-01.org.example:chap"},
		{"TargetAddress", "192.0.2.10:3260,1"},
	})
	split := 50
	for i, part := range [][]byte{full[:split], full[split:]} {
		p, err := readISCSIPDU(f.rd)
		if err != nil {
			f.t.Errorf("fake target: no text request: %v", err)
			return
		}
		req, err := parseISCSITextReq(p)
		if err != nil {
			f.t.Errorf("fake target: %v", err)
			return
		}
		kvs, _ := decodeISCSIText(req.Data)
		switch {
		case i == 0 && (req.TTT != iscsiReservedTag || !slices.Equal(keysOf(kvs), []string{"SendTargets=All"})):
			f.t.Errorf("first text request TTT 0x%x keys %v", req.TTT, kvs)
		case i == 1 && (req.TTT != 0x55 || len(kvs) != 0):
			f.t.Errorf("continuation text request TTT 0x%x keys %v, want TTT 0x55 and no keys", req.TTT, kvs)
		}
		resp := iscsiTextResp{ITT: req.ITT, TTT: 0x55, StatSN: f.statSN, Data: part}
		if i == 1 {
			resp.Final, resp.TTT = true, iscsiReservedTag
		}
		f.statSN++
		f.write(resp.pdu())
	}
	f.logout()
}

func TestISCSISendTargets(t *testing.T) {
	t.Run("listed", func(t *testing.T) {
		srv := startFakeISCSI(t, sendTargetsTarget)
		r := checkISCSIAt(t, srv.port, 5*time.Second, decodeISCSIOptions(t, map[string]any{
			"send_targets": true, "expect_target": "iqn.2024-01.org.example:chap",
		}))
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeOK, "")
		wantDetails(t, r, map[string]string{
			"target_count": "2",
			"targets":      "iqn.2024-01.org.example:disk1 (192.0.2.10:3260,1, [2001:db8::10]:3260,1) iqn.2024-01.org.example:chap (192.0.2.10:3260,1)",
			"logout":       "ok",
		})
	})
	t.Run("not advertised", func(t *testing.T) {
		srv := startFakeISCSI(t, sendTargetsTarget)
		r := checkISCSIAt(t, srv.port, 5*time.Second, decodeISCSIOptions(t, map[string]any{
			"send_targets": true, "expect_target": "iqn.2024-01.org.example:disk7",
		}))
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeProtocolError, "target not advertised: iqn.2024-01.org.example:disk7 is not among the 2 targets listed")
		wantDetails(t, r, map[string]string{"reason": "target not advertised", "target_count": "2", "logout": "ok"})
	})
}

func TestISCSITargetsDetailBounded(t *testing.T) {
	var ts []iscsiAdvertised
	for i := range 1000 {
		ts = append(ts, iscsiAdvertised{Name: fmt.Sprintf("iqn.2024-01.org.example:disk%d", i), Addresses: []string{"192.0.2.1:3260,1"}})
	}
	d := iscsiTargetsDetail(ts)
	if len(d) > iscsiDetailTargetsLen+32 || !strings.HasSuffix(d, " more") {
		t.Errorf("detail of 1000 targets is %d bytes: %q", len(d), iscsiTrunc(d, 80))
	}
	if !strings.HasPrefix(d, "iqn.2024-01.org.example:disk0 (192.0.2.1:3260,1) ") {
		t.Errorf("detail starts %q", iscsiTrunc(d, 80))
	}
}

// Hostile or broken peers end in the right outcome, in bounded time.
func TestISCSIHostilePeers(t *testing.T) {
	garbage := []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n")
	hugeHeader := func() []byte {
		h := (&iscsiLoginResp{}).pdu()
		b := h.marshal()
		b[5], b[6], b[7] = 0xff, 0xff, 0xff // 16 MiB announced, nothing follows
		return b
	}
	for _, tc := range []struct {
		name    string
		handle  func(f *fakeTarget)
		timeout time.Duration
		want    probe.Outcome
		errPart string
	}{
		{"garbage", func(f *fakeTarget) {
			f.readLogin()
			f.writeRaw(garbage)
		}, 5 * time.Second, probe.OutcomeProtocolError, "expected a Login Response (opcode 0x23), got opcode 0x08"},
		{"garbage shorter than a header, then close", func(f *fakeTarget) {
			f.readLogin()
			f.writeRaw([]byte("220 mail.example.org ESMTP\r\n"))
		}, 5 * time.Second, probe.OutcomeProtocolError, "unexpected EOF"},
		{"silence", func(f *fakeTarget) {
			f.readLogin()
			f.drain()
		}, 300 * time.Millisecond, probe.OutcomeServiceTimeout, "i/o timeout"},
		{"huge data segment", func(f *fakeTarget) {
			f.readLogin()
			f.writeRaw(hugeHeader())
			f.drain() // keep the connection open: the check must not wait for the data
		}, 5 * time.Second, probe.OutcomeProtocolError, "announces a 16777215-byte data segment, more than the 65536 bytes accepted"},
		{"EOF mid-PDU", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			resp := iscsiLoginResp{ITT: req.ITT, Data: encodeISCSIText([]iscsiKV{{"AuthMethod", "None"}})}
			b := resp.pdu().marshal()
			f.writeRaw(b[:len(b)-4])
		}, 5 * time.Second, probe.OutcomeProtocolError, "unexpected EOF"},
		{"accept, read, close", func(f *fakeTarget) {
			f.readLogin()
		}, 5 * time.Second, probe.OutcomeProtocolError, "closed the connection without answering"},
		{"accept, reset (after connect: a protocol_error)", func(f *fakeTarget) {
			_ = f.c.(*net.TCPConn).SetLinger(0)
		}, 5 * time.Second, probe.OutcomeProtocolError, "connection reset"},
		{"wrong task tag", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			req.ITT++
			f.answer(req, toStage1)
		}, 5 * time.Second, probe.OutcomeProtocolError, "response for task tag"},
		{"reject", func(f *fakeTarget) {
			f.readLogin()
			f.write((&iscsiReject{Reason: 0x04, Data: make([]byte, 48)}).pdu())
		}, 5 * time.Second, probe.OutcomeProtocolError, "the target rejected the request: protocol error"},
		{"bad text", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			f.answer(req, iscsiLoginResp{Transit: true, NSG: 1, Data: []byte("no equals sign\x00")})
		}, 5 * time.Second, probe.OutcomeProtocolError, "has no '='"},
		{"final response without TSIH", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			f.answer(req, iscsiLoginResp{Transit: true, NSG: 3})
		}, 5 * time.Second, probe.OutcomeProtocolError, "without a TSIH"},
		{"CHAP not offered", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			f.answer(req, iscsiLoginResp{}, iscsiKV{"AuthMethod", "CHAP"})
		}, 5 * time.Second, probe.OutcomeProtocolError, "AuthMethod=CHAP, which was not offered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeISCSI(t, tc.handle)
			r := checkISCSIAt(t, srv.port, tc.timeout, nil)
			srv.wait(t)
			wantOutcome(t, r, tc.want, tc.errPart)
		})
	}
}

// A target that logs in but never answers the logout still passes: the
// logout is best effort and bounded.
func TestISCSILogoutUnanswered(t *testing.T) {
	srv := startFakeISCSI(t, func(f *fakeTarget) {
		if f.tgtLogin() {
			f.drain()
		}
	})
	r := checkISCSIAt(t, srv.port, 30*time.Second, nil)
	srv.wait(t)
	wantOutcome(t, r, probe.OutcomeOK, "")
	wantDetails(t, r, map[string]string{"logout": "no answer"})
}

func TestISCSIRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := checkISCSIAt(t, port, 5*time.Second, nil)
	wantOutcome(t, r, probe.OutcomeRefused, "connection refused")
}

func TestISCSICancel(t *testing.T) {
	got := make(chan struct{})
	srv := startFakeISCSI(t, func(f *fakeTarget) {
		f.readLogin()
		close(got)
		f.drain()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the target holds the login request: the check must
		// return although its deadline is an hour away.
		select {
		case <-got:
			cancel()
		case <-ctx.Done():
		}
	}()
	r := Check(ctx, probe.Target{Host: "127.0.0.1", Port: srv.port, Check: "iscsi", Timeout: time.Hour})
	srv.wait(t)
	if !r.Interrupted || r.Success || !errors.Is(r.Err, probe.ErrInterrupted) {
		t.Errorf("cancelled run: interrupted %v, success %v, error %v; want an interrupted run", r.Interrupted, r.Success, r.Err)
	}
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
