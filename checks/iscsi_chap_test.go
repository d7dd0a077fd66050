package checks

import (
	"crypto/md5"
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
