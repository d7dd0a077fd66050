//go:build lab

package checks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// labApp runs check kind against the lab server's port with raw options.
func labApp(t *testing.T, kind string, port int, raw map[string]any, timeout time.Duration) probe.Result {
	t.Helper()
	opts, err := Decode(kind, raw)
	if err != nil {
		t.Fatalf("options %v: %v", raw, err)
	}
	k, _ := Lookup(kind)
	tg := probe.Target{
		Host: testlab.ServerAddr, Port: port, Protocol: k.Transport, Check: kind,
		Options: opts, Timeout: timeout,
	}
	return Check(context.Background(), tg)
}

func labWant(t *testing.T, r probe.Result, want probe.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %s (%v), want %s; details %v", r.Outcome, r.Err, want, r.Details)
	}
}

// labWrongSecret writes a wrong password to a file of the test's own.
func labWrongSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wrong.pw")
	if err := os.WriteFile(p, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func labTLS() map[string]any {
	return map[string]any{"ca_file": testlab.File("ca.pem"), "server_name": testlab.ServerName}
}

func TestLabLDAP(t *testing.T) {
	testlab.Require(t)
	const timeout = 5 * time.Second

	t.Run("anonymous root DSE", func(t *testing.T) {
		r := labApp(t, "ldap", testlab.LDAPPort, map[string]any{"rootdse": true}, timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Details["bind"] != "anonymous" || !strings.Contains(r.Details["naming_contexts"], testlab.LDAPBase) ||
			!strings.Contains(r.Details["ldap_versions"], "3") {
			t.Errorf("details %v", r.Details)
		}
		if r.Phases[probe.PhaseConnect] <= 0 || r.Phases[probe.PhaseRequest] <= 0 || r.Phases[probe.PhaseTLS] != 0 {
			t.Errorf("phases %v", r.Phases)
		}
	})
	t.Run("admin bind plain", func(t *testing.T) {
		r := labApp(t, "ldap", testlab.LDAPPort, map[string]any{
			"bind_dn": testlab.LDAPAdminDN, "password_file": testlab.File("ldap-admin.pw"),
			"allow_plaintext_bind": true,
		}, timeout)
		labWant(t, r, probe.OutcomeOK)
	})
	t.Run("user bind with StartTLS and search", func(t *testing.T) {
		r := labApp(t, "ldap", testlab.LDAPPort, map[string]any{
			"mode": "starttls", "tls": labTLS(),
			"bind_dn": testlab.LDAPUserDN, "password_file": testlab.File("ldap-user.pw"),
			"base_dn": testlab.LDAPBase, "filter": "(uid=alice)",
		}, timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Details["entries"] != "1" || r.Details["tls_version"] == "" || r.Phases[probe.PhaseTLS] <= 0 {
			t.Errorf("details %v phases %v", r.Details, r.Phases)
		}
		if r.Values[ValueTLSCertExpiry] <= float64(time.Now().Unix()) {
			t.Errorf("certificate expiry %v", r.Values)
		}
	})
	t.Run("LDAPS by port", func(t *testing.T) {
		r := labApp(t, "ldap", testlab.LDAPSPort, map[string]any{
			// An empty mode means LDAPS only on 636: a bind needs mode:
			// ldaps, so this one is anonymous.
			"tls": labTLS(),
		}, timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Details["mode"] != "ldaps" {
			t.Errorf("mode %q", r.Details["mode"])
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		r := labApp(t, "ldap", testlab.LDAPPort, map[string]any{
			"bind_dn": testlab.LDAPUserDN, "password_file": labWrongSecret(t),
			"allow_plaintext_bind": true,
		}, timeout)
		labWant(t, r, probe.OutcomeAuthError)
		if !strings.Contains(r.Details[probe.DetailReason], "49") {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
		if strings.Contains(r.Error(), "not-the-password") {
			t.Errorf("the error shows the password: %v", r.Err)
		}
	})
	t.Run("StartTLS without the CA", func(t *testing.T) {
		r := labApp(t, "ldap", testlab.LDAPPort, map[string]any{
			"mode": "starttls", "tls": map[string]any{"server_name": testlab.ServerName},
		}, timeout)
		labWant(t, r, probe.OutcomeTLSError)
		if !strings.Contains(r.Details[probe.DetailReason], "unknown authority") {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
	})
	t.Run("LDAPS on the plain port", func(t *testing.T) {
		r := labApp(t, "ldap", testlab.LDAPPort, map[string]any{"mode": "ldaps", "tls": labTLS()}, timeout)
		labWant(t, r, probe.OutcomeProtocolError)
	})
}

func TestLabSNMP(t *testing.T) {
	testlab.Require(t)
	const timeout = 3 * time.Second
	v3 := func(authFile string) map[string]any {
		return map[string]any{
			"version": "3", "username": testlab.SNMPUser, "security_level": "authPriv",
			"auth_protocol": "SHA", "auth_password_file": authFile,
			"priv_protocol": "AES", "priv_password_file": testlab.File("snmp-priv.pw"),
		}
	}

	t.Run("v2c", func(t *testing.T) {
		r := labApp(t, "snmp", testlab.SNMPPort, nil, timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Details["sys_descr"] == "" || r.Details["sys_uptime"] == "" {
			t.Errorf("details %v", r.Details)
		}
	})
	t.Run("v1 sysName", func(t *testing.T) {
		r := labApp(t, "snmp", testlab.SNMPPort, map[string]any{"version": "1", "oids": []string{"1.3.6.1.2.1.1.5.0"}}, timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Details[".1.3.6.1.2.1.1.5.0"] != testlab.ServerName {
			t.Errorf("details %v", r.Details)
		}
	})
	t.Run("v2c missing object", func(t *testing.T) {
		r := labApp(t, "snmp", testlab.SNMPPort, map[string]any{"oids": []string{"1.3.6.1.2.1.1.5.42"}}, timeout)
		labWant(t, r, probe.OutcomeProtocolError)
		if r.Details["missing_oids"] != ".1.3.6.1.2.1.1.5.42" {
			t.Errorf("details %v", r.Details)
		}
	})
	t.Run("v2c wrong community", func(t *testing.T) {
		p := labWrongSecret(t)
		r := labApp(t, "snmp", testlab.SNMPPort, map[string]any{"community_file": p}, time.Second)
		labWant(t, r, probe.OutcomeTimeout)
	})
	t.Run("v3 authPriv", func(t *testing.T) {
		r := labApp(t, "snmp", testlab.SNMPPort, v3(testlab.File("snmp-auth.pw")), timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Details["sys_descr"] == "" {
			t.Errorf("details %v", r.Details)
		}
	})
	t.Run("v3 wrong auth password", func(t *testing.T) {
		r := labApp(t, "snmp", testlab.SNMPPort, v3(labWrongSecret(t)), timeout)
		labWant(t, r, probe.OutcomeAuthError)
	})
	t.Run("v3 unknown user", func(t *testing.T) {
		o := v3(testlab.File("snmp-auth.pw"))
		o["username"] = "nobody"
		r := labApp(t, "snmp", testlab.SNMPPort, o, timeout)
		labWant(t, r, probe.OutcomeAuthError)
	})
}

func TestLabHTTP(t *testing.T) {
	testlab.Require(t)
	const timeout = 5 * time.Second

	t.Run("http", func(t *testing.T) {
		r := labApp(t, "http", testlab.HTTPPort, nil, timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Values[ValueHTTPStatus] != 200 {
			t.Errorf("values %v", r.Values)
		}
	})
	t.Run("https", func(t *testing.T) {
		r := labApp(t, "http", testlab.HTTPSPort, map[string]any{"tls": labTLS()}, timeout)
		labWant(t, r, probe.OutcomeOK)
		if r.Values[ValueHTTPStatus] != 200 || r.Values[ValueTLSCertExpiry] <= float64(time.Now().Unix()) ||
			r.Phases[probe.PhaseTLS] <= 0 {
			t.Errorf("values %v phases %v", r.Values, r.Phases)
		}
	})
	t.Run("https expired", func(t *testing.T) {
		r := labApp(t, "http", testlab.HTTPSExpired, map[string]any{"tls": labTLS()}, timeout)
		labWant(t, r, probe.OutcomeTLSError)
		if !strings.Contains(r.Details[probe.DetailReason], "expired") {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
	})
	t.Run("https wrong host", func(t *testing.T) {
		r := labApp(t, "http", testlab.HTTPSWrongHost, map[string]any{"tls": labTLS()}, timeout)
		labWant(t, r, probe.OutcomeTLSError)
	})
	t.Run("plain http to the https port", func(t *testing.T) {
		r := labApp(t, "http", testlab.HTTPSPort, map[string]any{"scheme": "http"}, timeout)
		labWant(t, r, probe.OutcomeProtocolError)
	})
	t.Run("https to the ssh port", func(t *testing.T) {
		r := labApp(t, "http", testlab.SSHPort, map[string]any{"scheme": "https"}, timeout)
		labWant(t, r, probe.OutcomeProtocolError)
	})
}

func TestLabSSH(t *testing.T) {
	testlab.Require(t)
	r := labApp(t, "ssh", testlab.SSHPort, map[string]any{"expect": "^SSH-2\\.0-OpenSSH"}, 5*time.Second)
	labWant(t, r, probe.OutcomeOK)
	if !strings.HasPrefix(r.Details["software_version"], "OpenSSH") {
		t.Errorf("details %v", r.Details)
	}
	t.Run("http server is not ssh", func(t *testing.T) {
		r := labApp(t, "ssh", testlab.HTTPPort, nil, 5*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
	})
}

// TestLabAppFirewall proves that each firewall action ends each check in
// the outcome that names it.
func TestLabAppFirewall(t *testing.T) {
	testlab.Require(t)
	type fwCase struct {
		kind   string
		proto  string
		port   int
		action testlab.Action
		want   probe.Outcome
	}
	var cases []fwCase
	for _, k := range []struct {
		kind string
		port int
	}{{"ldap", testlab.LDAPPort}, {"http", testlab.HTTPPort}, {"ssh", testlab.SSHPort}} {
		cases = append(cases,
			fwCase{k.kind, "tcp", k.port, testlab.Drop, probe.OutcomeTimeout},
			fwCase{k.kind, "tcp", k.port, testlab.RejectTCPReset, probe.OutcomeRefused},
			fwCase{k.kind, "tcp", k.port, testlab.RejectAdminProhib, probe.OutcomeUnreachable},
		)
	}
	cases = append(cases,
		fwCase{"snmp", "udp", testlab.SNMPPort, testlab.Drop, probe.OutcomeTimeout},
		fwCase{"snmp", "udp", testlab.SNMPPort, testlab.RejectPortUnreach, probe.OutcomeRefused},
		fwCase{"snmp", "udp", testlab.SNMPPort, testlab.RejectAdminProhib, probe.OutcomeUnreachable},
	)
	for _, c := range cases {
		t.Run(c.kind+"/"+string(c.action), func(t *testing.T) {
			testlab.Firewall(t, c.proto, c.port, c.action)
			r := labApp(t, c.kind, c.port, nil, time.Second)
			labWant(t, r, c.want)
		})
	}
	t.Run("snmp v3 drop", func(t *testing.T) {
		testlab.Firewall(t, "udp", testlab.SNMPPort, testlab.Drop)
		r := labApp(t, "snmp", testlab.SNMPPort, map[string]any{
			"version": "3", "username": testlab.SNMPUser,
			"auth_password_file": testlab.File("snmp-auth.pw"), "priv_password_file": testlab.File("snmp-priv.pw"),
		}, time.Second)
		labWant(t, r, probe.OutcomeTimeout)
	})
}
