package checks

import (
	"slices"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

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
