//go:build lab

package checks

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

var iscsiCapture = flag.Bool("iscsi.capture", false,
	"rewrite checks/testdata/iscsi/tgt-*.hex from the lab's tgt instead of comparing with them")

// labISCSI runs the iscsi check against the lab's tgt.
func labISCSI(t *testing.T, raw map[string]any, timeout time.Duration) probe.Result {
	t.Helper()
	opts, err := Decode("iscsi", raw)
	if err != nil {
		t.Fatalf("options %v: %v", raw, err)
	}
	return Check(context.Background(), probe.Target{
		Host: testlab.ServerAddr, Port: testlab.ISCSIPort, Protocol: probe.TCP, Check: "iscsi",
		Options: opts, Timeout: timeout,
	})
}

func labISCSIWrongSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wrong.secret")
	if err := os.WriteFile(p, []byte("not-the-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLabISCSI(t *testing.T) {
	testlab.Require(t)
	const timeout = 5 * time.Second
	chap := func(secretFile string) map[string]any {
		return map[string]any{"target": testlab.ISCSIChap, "chap_username": testlab.ISCSIChapUser, "chap_secret_file": secretFile}
	}

	t.Run("discovery", func(t *testing.T) {
		r := labISCSI(t, nil, timeout)
		wantOutcome(t, r, probe.OutcomeOK, "")
		wantDetails(t, r, map[string]string{"session_type": "discovery", "status": "0x0000 success", "auth_method": "None", "logout": "ok"})
		if r.Details["tsih"] == "" || r.Details["tsih"] == "0" {
			t.Errorf("tsih %q", r.Details["tsih"])
		}
	})
	t.Run("send targets", func(t *testing.T) {
		r := labISCSI(t, map[string]any{"send_targets": true, "expect_target": testlab.ISCSITarget}, timeout)
		wantOutcome(t, r, probe.OutcomeOK, "")
		addr := testlab.Addr(testlab.ISCSIPort) + ",1"
		wantDetails(t, r, map[string]string{"target_count": "2", "logout": "ok"})
		for _, name := range []string{testlab.ISCSITarget, testlab.ISCSIChap} {
			if !strings.Contains(r.Details["targets"], name+" ("+addr+")") {
				t.Errorf("targets %q: want %s (%s)", r.Details["targets"], name, addr)
			}
		}
	})
	t.Run("send targets, target not advertised", func(t *testing.T) {
		r := labISCSI(t, map[string]any{"send_targets": true, "expect_target": "iqn.2024-01.org.example.lab:missing"}, timeout)
		wantOutcome(t, r, probe.OutcomeProtocolError, "target not advertised")
	})
	t.Run("normal login", func(t *testing.T) {
		r := labISCSI(t, map[string]any{"target": testlab.ISCSITarget}, timeout)
		wantOutcome(t, r, probe.OutcomeOK, "")
		wantDetails(t, r, map[string]string{"session_type": "normal", "logout": "ok"})
	})
	t.Run("unknown target", func(t *testing.T) {
		r := labISCSI(t, map[string]any{"target": "iqn.2024-01.org.example.lab:missing"}, timeout)
		wantOutcome(t, r, probe.OutcomeAuthError, "target not found (status 0x0203")
		wantDetails(t, r, map[string]string{"reason": "target not found", "status": "0x0203 target not found"})
	})
	t.Run("CHAP target without credentials", func(t *testing.T) {
		r := labISCSI(t, map[string]any{"target": testlab.ISCSIChap}, timeout)
		wantOutcome(t, r, probe.OutcomeAuthError, "authentication failure (status 0x0201)")
	})
	t.Run("CHAP target, wrong secret", func(t *testing.T) {
		r := labISCSI(t, chap(labISCSIWrongSecret(t)), timeout)
		wantOutcome(t, r, probe.OutcomeAuthError, "authentication failure (status 0x0201)")
	})
	t.Run("CHAP target, right secret", func(t *testing.T) {
		r := labISCSI(t, chap(testlab.File("iscsi-chap.secret")), timeout)
		wantOutcome(t, r, probe.OutcomeOK, "")
		wantDetails(t, r, map[string]string{"auth_method": "CHAP", "session_type": "normal", "logout": "ok"})
		secret := testlab.Secret(t, "iscsi-chap.secret")
		for k, v := range r.Details {
			if strings.Contains(v, secret) {
				t.Errorf("detail %s shows the secret", k)
			}
		}
	})
	for _, fw := range []struct {
		action  testlab.Action
		want    probe.Outcome
		timeout time.Duration
	}{
		{testlab.Drop, probe.OutcomeTimeout, time.Second},
		{testlab.RejectTCPReset, probe.OutcomeRefused, timeout},
		{testlab.RejectAdminProhib, probe.OutcomeUnreachable, timeout},
	} {
		t.Run("firewall "+string(fw.action), func(t *testing.T) {
			testlab.Firewall(t, "tcp", testlab.ISCSIPort, fw.action)
			r := labISCSI(t, nil, fw.timeout)
			wantOutcome(t, r, fw.want, "connect")
		})
	}
}

// recordConn keeps a copy of everything read and written.
type recordConn struct {
	net.Conn
	in, out bytes.Buffer
}

func (c *recordConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Write(b[:n])
	return n, err
}

func (c *recordConn) Write(b []byte) (int, error) {
	c.out.Write(b)
	return c.Conn.Write(b)
}

// TestLabISCSIFixtures runs the exchanges that testdata/iscsi/tgt-*.hex
// hold against the lab's tgt and checks that tgt still answers them the
// same way; with -iscsi.capture it rewrites the files instead.
func TestLabISCSIFixtures(t *testing.T) {
	testlab.Require(t)
	for _, ex := range iscsiExchanges {
		t.Run(ex.file, func(t *testing.T) {
			raw := map[string]any{}
			for k, v := range ex.options {
				raw[k] = v
			}
			if _, ok := raw["chap_username"]; ok {
				raw["chap_secret_file"] = testlab.File("iscsi-chap.secret")
				if ex.wrongSecret {
					raw["chap_secret_file"] = labISCSIWrongSecret(t)
				}
			}
			opts, err := Decode("iscsi", raw)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", testlab.Addr(testlab.ISCSIPort))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			dl, _ := ctx.Deadline()
			_ = conn.SetDeadline(dl)
			rc := &recordConn{Conn: conn}
			chap, err := opts.(*ISCSIOptions).revealCHAP()
			if err != nil {
				t.Fatal(err)
			}
			s := newISCSISession(rc, opts.(*ISCSIOptions), chap)
			s.isid, s.itt = iscsiFixtureISID, iscsiFixtureITT
			var r probe.Result
			err = s.run(ctx, &r)
			if got := Classify(err, false); got != ex.outcome {
				t.Fatalf("outcome %v (%v), want %v", got, err, ex.outcome)
			}
			got := iscsiExchange{requests: splitISCSIPDUs(t, rc.out.Bytes()), responses: splitISCSIPDUs(t, rc.in.Bytes())}
			path := filepath.Join("testdata", "iscsi", ex.file)
			if *iscsiCapture {
				// CHAP_R is derived from the lab's secret: keep it out of
				// the repository.
				for i, b := range got.requests {
					got.requests[i] = maskISCSIValue(b, "CHAP_R=0x")
				}
				if err := os.WriteFile(path, formatISCSIExchange(ex, got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := readISCSIExchange(t, path)
			compareISCSIExchange(t, got, want)
		})
	}
}

func splitISCSIPDUs(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	rd := bytes.NewReader(b)
	for rd.Len() > 0 {
		start := len(b) - rd.Len()
		if _, err := readISCSIPDU(rd); err != nil {
			t.Fatalf("captured bytes: %v", err)
		}
		out = append(out, b[start:len(b)-rd.Len()])
	}
	return out
}

// compareISCSIExchange compares a fresh capture with a fixture: the same
// PDUs with the same header fields and keys, except what changes from
// session to session (the TSIH, the CHAP identifier, challenge and
// response, and so the data length).
func compareISCSIExchange(t *testing.T, got, want iscsiExchange) {
	t.Helper()
	for _, side := range []struct {
		name      string
		got, want [][]byte
	}{{"request", got.requests, want.requests}, {"response", got.responses, want.responses}} {
		if len(side.got) != len(side.want) {
			t.Fatalf("%d %ss, the fixture has %d", len(side.got), side.name, len(side.want))
		}
		for i := range side.got {
			gh, gk := stableISCSI(t, side.got[i])
			wh, wk := stableISCSI(t, side.want[i])
			if !bytes.Equal(gh, wh) || !slices.Equal(gk, wk) {
				t.Errorf("%s %d differs from the fixture:\n got % x %q\nwant % x %q", side.name, i+1, gh, gk, wh, wk)
			}
		}
	}
}

// stableISCSI returns a PDU's header and keys without the volatile parts.
func stableISCSI(t *testing.T, b []byte) ([]byte, []string) {
	t.Helper()
	p, err := readISCSIPDU(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	h := p.bhs
	h[5], h[6], h[7] = 0, 0, 0
	if p.opcode() == iscsiOpLoginResp {
		h[14], h[15] = 0, 0
	}
	kvs, err := decodeISCSIText(p.data)
	if err != nil {
		t.Fatal(err)
	}
	keys := keysOf(kvs)
	for i, kv := range kvs {
		switch kv.Key {
		case "CHAP_I", "CHAP_C", "CHAP_R":
			keys[i] = kv.Key + "=*"
		}
	}
	return h[:], keys
}

// maskISCSIValue replaces the value of key in a PDU's text with zeros.
func maskISCSIValue(b []byte, key string) []byte {
	b = bytes.Clone(b)
	i := bytes.Index(b, []byte(key))
	for j := i + len(key); i >= 0 && j < len(b) && b[j] != 0; j++ {
		b[j] = '0'
	}
	return b
}
