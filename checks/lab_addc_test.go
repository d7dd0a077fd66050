//go:build lab

package checks

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// adCase is one Active Directory flow checked against the lab's own DC.
type adCase struct {
	name  string
	kind  string
	proto probe.Protocol
	port  int
	raw   map[string]any
	// drop is the outcome behind a DROP rule: timeout, or no_response for
	// the UDP kinds that cannot tell silence from a filter.
	drop probe.Outcome
	// want checks the details of a direct, successful run.
	want func(r probe.Result) string
	v4   bool // IPv4 only (NetBIOS)
}

func adCases(dc *testlab.ADDC) []adCase {
	tls := map[string]any{"ca_file": dc.CAFile, "server_name": testlab.ADHost}
	bind := func(mode string, extra map[string]any) map[string]any {
		m := map[string]any{"mode": mode, "bind_dn": testlab.ADAdminDN, "password_file": dc.PasswordFile, "tls": tls}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	detail := func(key, want string) func(probe.Result) string {
		return func(r probe.Result) string {
			if r.Details[key] != want {
				return key + " = " + r.Details[key] + ", want " + want
			}
			return ""
		}
	}
	kerberosError := func(r probe.Result) string {
		switch e := r.Details["kerberos_error"]; e {
		case "KDC_ERR_C_PRINCIPAL_UNKNOWN", "KDC_ERR_PREAUTH_REQUIRED":
			return ""
		default:
			return "kerberos_error = " + e
		}
	}
	srv := map[string]any{"name": testlab.ADSRV, "type": "SRV", "answers": []string{"0 100 389 " + testlab.ADHost}}
	return []adCase{
		{name: "ldaps bind", kind: "ldap", proto: probe.TCP, port: 636, raw: bind("ldaps", nil),
			drop: probe.OutcomeTimeout, want: detail("bind", testlab.ADAdminDN)},
		{name: "starttls bind", kind: "ldap", proto: probe.TCP, port: 389, raw: bind("starttls", nil),
			drop: probe.OutcomeTimeout, want: detail("bind", testlab.ADAdminDN)},
		{name: "global catalog search", kind: "ldap", proto: probe.TCP, port: 3268,
			raw:  bind("starttls", map[string]any{"base_dn": testlab.ADBaseDN, "filter": "(sAMAccountName=Administrator)"}),
			drop: probe.OutcomeTimeout, want: detail("entries", "1")},
		{name: "dns srv udp", kind: "dns", proto: probe.UDP, port: 53, raw: srv,
			drop: probe.OutcomeTimeout, want: detail("rcode", "NOERROR")},
		{name: "dns srv tcp", kind: "dns", proto: probe.TCP, port: 53, raw: withTransportTCP(srv),
			drop: probe.OutcomeTimeout, want: detail("rcode", "NOERROR")},
		{name: "kerberos udp", kind: "kerberos", proto: probe.UDP, port: 88, raw: map[string]any{"realm": testlab.ADRealm},
			drop: probe.OutcomeNoResponse, want: kerberosError},
		{name: "kerberos tcp preauth", kind: "kerberos", proto: probe.TCP, port: 88,
			raw:  map[string]any{"realm": testlab.ADRealm, "transport": "tcp", "principal": "Administrator"},
			drop: probe.OutcomeTimeout, want: detail("kerberos_error", "KDC_ERR_PREAUTH_REQUIRED")},
		{name: "kpasswd udp", kind: "kpasswd", proto: probe.UDP, port: 464, raw: map[string]any{"realm": testlab.ADRealm},
			drop: probe.OutcomeNoResponse, want: detail("kpasswd_reply", "KRB-ERROR")},
		{name: "kpasswd tcp", kind: "kpasswd", proto: probe.TCP, port: 464, raw: map[string]any{"realm": testlab.ADRealm, "transport": "tcp"},
			drop: probe.OutcomeTimeout, want: detail("kpasswd_reply", "KRB-ERROR")},
		{name: "cldap ping", kind: "cldap", proto: probe.UDP, port: 389,
			raw:  map[string]any{"filter": "(&(DnsDomain=" + testlab.ADDNSDomain + ")(NtVer=\\06\\00\\00\\00))"},
			drop: probe.OutcomeNoResponse, want: detail("netlogon", "LOGON_SAM_LOGON_RESPONSE_EX")},
		{name: "smb negotiate", kind: "smb", proto: probe.TCP, port: 445,
			drop: probe.OutcomeTimeout, want: detail("smb_signing", "required")},
		{name: "smb over netbios session", kind: "smb", proto: probe.TCP, port: 139,
			drop: probe.OutcomeTimeout, want: detail("smb_signing", "required")},
		{name: "netbios-ns", kind: "netbios-ns", proto: probe.UDP, port: 137, raw: map[string]any{"name": testlab.ADHostName},
			drop: probe.OutcomeNoResponse, v4: true, want: func(r probe.Result) string {
				if !strings.Contains(r.Details["netbios_names"], testlab.ADDomain+"<1c>") {
					return "netbios_names = " + r.Details["netbios_names"] + ", want the domain controllers' group " + testlab.ADDomain + "<1c>"
				}
				return ""
			}},
		{name: "ntp", kind: "ntp", proto: probe.UDP, port: 123, drop: probe.OutcomeTimeout},
	}
}

func withTransportTCP(raw map[string]any) map[string]any {
	m := map[string]any{"transport": "tcp"}
	for k, v := range raw {
		m[k] = v
	}
	return m
}

// adRun runs one case from the DC's client namespace.
func adRun(t *testing.T, dc *testlab.ADDC, c adCase, host string, expect probe.Expect, timeout time.Duration) probe.Result {
	t.Helper()
	opts, err := Decode(c.kind, c.raw)
	if err != nil {
		t.Fatalf("options %v: %v", c.raw, err)
	}
	tg := probe.Target{Host: host, Port: c.port, Protocol: c.proto, Check: c.kind, Options: opts, Timeout: timeout, Expect: expect}
	var r probe.Result
	dc.Do(t, func() { r = Check(context.Background(), tg) })
	return r
}

// TestADDC proves every Active Directory flow against a Samba AD DC of the
// test's own: directly over IPv4 and IPv6, behind DROP and REJECT rules in
// the DC's namespace, and as deny flows.
func TestADDC(t *testing.T) {
	dc := testlab.NewADDC(t)
	cases := adCases(dc)
	const answer, dropped = 5 * time.Second, time.Second

	t.Run("direct", func(t *testing.T) {
		for _, c := range cases {
			for _, host := range []string{testlab.ADAddr, testlab.ADAddr6} {
				if c.v4 && host == testlab.ADAddr6 {
					continue // NetBIOS is IPv4 only
				}
				t.Run(c.name+"/"+host, func(t *testing.T) {
					r := adRun(t, dc, c, host, probe.ExpectAllow, answer)
					if r.Outcome != probe.OutcomeOK || !r.Success {
						t.Fatalf("outcome %s (%v), want ok; details %v", r.Outcome, r.Err, r.Details)
					}
					if c.want != nil {
						if msg := c.want(r); msg != "" {
							t.Errorf("%s; details %v", msg, r.Details)
						}
					}
				})
			}
		}
	})

	t.Run("firewall", func(t *testing.T) {
		for _, c := range cases {
			reject := testlab.RejectTCPReset
			if c.proto == probe.UDP {
				reject = testlab.RejectPortUnreach
			}
			for _, fw := range []struct {
				action testlab.Action
				want   probe.Outcome
			}{
				{testlab.Drop, c.drop},
				{reject, probe.OutcomeRefused},
				{testlab.RejectAdminProhib, probe.OutcomeUnreachable},
			} {
				t.Run(c.name+"/"+string(fw.action), func(t *testing.T) {
					dc.Block(t, string(c.proto), c.port, fw.action)
					r := adRun(t, dc, c, testlab.ADAddr, probe.ExpectAllow, dropped)
					if r.Outcome != fw.want || r.Success {
						t.Errorf("allow: outcome %s (%v) success %v, want %s failing; details %v", r.Outcome, r.Err, r.Success, fw.want, r.Details)
					}
					r = adRun(t, dc, c, testlab.ADAddr, probe.ExpectDeny, dropped)
					if r.Outcome != fw.want || !r.Success {
						t.Errorf("deny: outcome %s (%v) success %v, want %s passing; details %v", r.Outcome, r.Err, r.Success, fw.want, r.Details)
					}
				})
			}
		}
	})

	t.Run("deny flow on an open path", func(t *testing.T) {
		// The path is open: each deny flow fails, and an LDAP deny flow
		// only connects; the bind and its password are never sent.
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := adRun(t, dc, c, testlab.ADAddr, probe.ExpectDeny, answer)
				if r.Success {
					t.Fatalf("deny flow passed on an open path: outcome %s, details %v", r.Outcome, r.Details)
				}
				if c.proto == probe.TCP && (r.Details["deny_probe"] != "connect only" || r.Details["bind"] != "") {
					t.Errorf("deny flow over TCP: details %v, want deny_probe = connect only and no bind", r.Details)
				}
			})
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		c := cases[0]
		c.raw = map[string]any{"mode": "ldaps", "bind_dn": testlab.ADAdminDN, "password_file": labWrongSecret(t),
			"tls": map[string]any{"ca_file": dc.CAFile, "server_name": testlab.ADHost}}
		r := adRun(t, dc, c, testlab.ADAddr, probe.ExpectAllow, answer)
		if r.Outcome != probe.OutcomeAuthError {
			t.Fatalf("outcome %s (%v), want auth_error; details %v", r.Outcome, r.Err, r.Details)
		}
	})

	t.Run("ldaps by address", func(t *testing.T) {
		// The certificate names the DC's addresses too.
		c := cases[0]
		c.raw = map[string]any{"mode": "ldaps", "bind_dn": testlab.ADAdminDN, "password_file": dc.PasswordFile,
			"tls": map[string]any{"ca_file": dc.CAFile}}
		if r := adRun(t, dc, c, net.ParseIP(testlab.ADAddr6).String(), probe.ExpectAllow, answer); r.Outcome != probe.OutcomeOK {
			t.Fatalf("outcome %s (%v), want ok; details %v", r.Outcome, r.Err, r.Details)
		}
	})
}
