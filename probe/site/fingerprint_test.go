package site_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// writeCA writes a self-signed CA certificate named cn to path.
func writeCA(t *testing.T, path, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(2_000_000_000, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// planTLS plans one tls target with a ca_file against the demo catalog,
// with the real check binder (whose decoded options hold a CA pool).
func planTLS(t *testing.T, caFile, serverName, interval string) probe.Target {
	t.Helper()
	cat, err := catalog.LoadFS(os.DirFS("testdata/plan"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := site.ParseConfig("site.yml", fmt.Appendf(nil, `
products:
  - name: demo
    self: appliance
    only: [hv-api]
    interval: %s
    roles:
      hypervisor:
        hosts: [hv1.example.org]
        check: tls
        options:
          tls: {ca_file: %q, server_name: %s}
`, interval, caFile, serverName))
	if err != nil {
		t.Fatal(err)
	}
	res, err := site.Plan(cat, cfg, checks.Binder{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Targets) != 1 {
		t.Fatalf("planned %d targets, want 1", len(res.Targets))
	}
	return res.Targets[0]
}

// An identical config plans targets with the same fingerprint although
// their decoded options (a CA pool) never compare equal; a changed CA
// file, option or setting changes it.
func TestPlanFingerprintIdentifiesSettings(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writeCA(t, ca, "first")
	a, b := planTLS(t, ca, "hv.example.org", "1m"), planTLS(t, ca, "hv.example.org", "1m")
	if a.Fingerprint.IsZero() {
		t.Fatal("the planner set no fingerprint")
	}
	if reflect.DeepEqual(a.Options, b.Options) {
		t.Fatal("decoded options compare equal; the test no longer covers options that never do")
	}
	if a.Fingerprint != b.Fingerprint || !a.Same(&b) {
		t.Fatalf("identical configs: fingerprints %s and %s, want equal", a.Fingerprint, b.Fingerprint)
	}
	for name, c := range map[string]probe.Target{
		"server_name": planTLS(t, ca, "other.example.org", "1m"),
		"interval":    planTLS(t, ca, "hv.example.org", "2m"),
	} {
		if c.Fingerprint == a.Fingerprint || c.Same(&a) {
			t.Errorf("changed %s: same fingerprint", name)
		}
	}
	writeCA(t, ca, "second")
	if c := planTLS(t, ca, "hv.example.org", "1m"); c.Fingerprint == a.Fingerprint {
		t.Error("changed ca_file contents: same fingerprint")
	}
}
