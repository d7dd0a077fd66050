package probe

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFingerprintCoversRawOptionsAndFiles(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := Target{ID: "p/f/h:389/tcp/ldap", Host: "h", Port: 389, Protocol: TCP, Check: "ldap", Interval: time.Minute, Timeout: 5 * time.Second}
	raw := func() map[string]any {
		return map[string]any{"bind_dn": "cn=probe", "password_file": secret, "tls": map[string]any{"ca_file": "/nonexistent/ca.pem", "min_version": "TLS12"}, "ports": []any{1, 2.5, true, nil}}
	}
	var fp Fingerprinter
	base := fp.Of(&tg, raw())
	for range 20 { // map order must not matter
		var again Fingerprinter
		if got := again.Of(&tg, raw()); got != base {
			t.Fatalf("fingerprint %s, then %s for the same target", base, got)
		}
	}
	changed := map[string]func() Fingerprint{
		"option": func() Fingerprint { r := raw(); r["bind_dn"] = "cn=other"; return (&Fingerprinter{}).Of(&tg, r) },
		"nested": func() Fingerprint {
			r := raw()
			r["tls"].(map[string]any)["min_version"] = "TLS13"
			return (&Fingerprinter{}).Of(&tg, r)
		},
		"type": func() Fingerprint {
			r := raw()
			r["ports"] = []any{"1", 2.5, true, nil}
			return (&Fingerprinter{}).Of(&tg, r)
		},
		"timeout": func() Fingerprint { c := tg; c.Timeout++; return (&Fingerprinter{}).Of(&c, raw()) },
		"expect":  func() Fingerprint { c := tg; c.Expect = ExpectDeny; return (&Fingerprinter{}).Of(&c, raw()) },
		"secret file contents": func() Fingerprint {
			if err := os.WriteFile(secret, []byte("other\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return (&Fingerprinter{}).Of(&tg, raw())
		},
	}
	for name, f := range changed {
		if f() == base {
			t.Errorf("changed %s: same fingerprint", name)
		}
	}
	// One pass reads a file once: a pass that saw the old contents keeps them.
	if got := fp.Of(&tg, raw()); got != base {
		t.Error("a Fingerprinter re-read a file within its pass")
	}
}

func TestSameFallsBackToFieldsWithoutFingerprint(t *testing.T) {
	a := Target{ID: "x", Options: &struct{ f func() }{}}
	b := a
	if !a.Same(&b) {
		t.Error("a target is not the same as its copy")
	}
	b.Options = &struct{ f func() }{f: func() {}}
	if a.Same(&b) {
		t.Error("targets with different options and no fingerprint are the same")
	}
	a.Fingerprint, b.Fingerprint = Fingerprint{1}, Fingerprint{1}
	if !a.Same(&b) {
		t.Error("targets with the same fingerprint differ")
	}
}
