package checks

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/flowprobe/flowprobe/probe"
)

// fakeLDAP is a small LDAP server: it answers binds with a chosen result
// code, StartTLS when it has a certificate, and searches with entries.
type fakeLDAP struct {
	password   string         // the one password that binds
	bindCode   map[string]int // result code by DN, instead of checking the password
	anonCode   int            // result code of an anonymous bind
	searchCode int            // result code of SearchResultDone
	entries    int            // entries a search returns
	cert       *tls.Certificate
}

func ldapMessage(id int64, op *ber.Packet) []byte {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	p.AppendChild(op)
	return p.Bytes()
}

func ldapResultOp(tag ber.Tag, code int, msg string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "Result")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, msg, "diagnosticMessage"))
	return op
}

func ldapEntryOp(dn string, attrs map[string][]string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "Entry")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "objectName"))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
	for name, vals := range attrs {
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, name, "type"))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		for _, v := range vals {
			set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, "value"))
		}
		a.AppendChild(set)
		list.AppendChild(a)
	}
	op.AppendChild(list)
	return op
}

func (f *fakeLDAP) serve(c net.Conn) {
	var conn net.Conn = c
	for range 100 {
		p, err := ber.ReadPacket(conn)
		if err != nil || len(p.Children) < 2 {
			return
		}
		id, _ := p.Children[0].Value.(int64)
		op := p.Children[1]
		var out []byte
		switch op.Tag {
		case ldap.ApplicationBindRequest:
			dn, _ := op.Children[1].Value.(string)
			code := f.anonCode
			if dn != "" {
				var ok bool
				if code, ok = f.bindCode[dn]; !ok {
					code = ldap.LDAPResultInvalidCredentials
					if op.Children[2].Data.String() == f.password {
						code = ldap.LDAPResultSuccess
					}
				}
			}
			out = ldapMessage(id, ldapResultOp(ldap.ApplicationBindResponse, code, ""))
		case ldap.ApplicationUnbindRequest:
			return
		case ldap.ApplicationSearchRequest:
			base, _ := op.Children[0].Value.(string)
			for i := range f.entries {
				dn := fmt.Sprintf("uid=u%d,%s", i, base)
				attrs := map[string][]string{"uid": {fmt.Sprint(i)}}
				if base == "" {
					dn = ""
					attrs = map[string][]string{
						"namingContexts": {"dc=example,dc=org"}, "supportedLDAPVersion": {"3"},
						"vendorName": {"Example"}, "vendorVersion": {"1.0"},
					}
				}
				if _, err := conn.Write(ldapMessage(id, ldapEntryOp(dn, attrs))); err != nil {
					return
				}
			}
			out = ldapMessage(id, ldapResultOp(ldap.ApplicationSearchResultDone, f.searchCode, ""))
		case ldap.ApplicationExtendedRequest:
			if f.cert == nil {
				out = ldapMessage(id, ldapResultOp(ldap.ApplicationExtendedResponse, ldap.LDAPResultProtocolError, "unsupported extended operation"))
				break
			}
			if _, err := conn.Write(ldapMessage(id, ldapResultOp(ldap.ApplicationExtendedResponse, 0, ""))); err != nil {
				return
			}
			conn = tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*f.cert}})
			continue
		default:
			return
		}
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

func (f *fakeLDAP) start(t *testing.T) int { return appTCPPeer(t, f.serve) }

// startLDAPS serves f over TLS from the first byte.
func (f *fakeLDAP) startLDAPS(t *testing.T, cert tls.Certificate) int {
	return appTCPPeer(t, func(c net.Conn) {
		f.serve(tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}}))
	})
}

const fakeUserDN = "uid=alice,ou=people,dc=example,dc=org"

func TestLDAPBinds(t *testing.T) {
	pw := appFile(t, "user.pw", "s3cret-of-alice\n")
	wrong := appFile(t, "wrong.pw", "guessed-wrong\n")
	f := &fakeLDAP{password: "s3cret-of-alice", entries: 1, bindCode: map[string]int{
		"cn=anon-off":  ldap.LDAPResultInappropriateAuthentication,
		"cn=unwilling": ldap.LDAPResultUnwillingToPerform,
		"cn=needs-tls": ldap.LDAPResultConfidentialityRequired,
		"cn=stronger":  ldap.LDAPResultStrongAuthRequired,
		"cn=busy":      ldap.LDAPResultBusy,
	}}
	port := f.start(t)
	// The fake server speaks plain LDAP: these binds need the opt-in.
	bind := func(dn, file string) map[string]any {
		return map[string]any{"bind_dn": dn, "password_file": file, "allow_plaintext_bind": true}
	}
	cases := []struct {
		name   string
		opts   map[string]any
		want   probe.Outcome
		reason string
	}{
		{"anonymous", nil, probe.OutcomeOK, ""},
		{"simple", bind(fakeUserDN, pw), probe.OutcomeOK, ""},
		{"wrong password", bind(fakeUserDN, wrong), probe.OutcomeAuthError, "result code 49 (Invalid Credentials)"},
		{"inappropriate", bind("cn=anon-off", pw), probe.OutcomeAuthError, "result code 48 (Inappropriate Authentication)"},
		{"unwilling", bind("cn=unwilling", pw), probe.OutcomeAuthError, "result code 53 (Unwilling To Perform)"},
		{"confidentiality required", bind("cn=needs-tls", pw), probe.OutcomeTLSError, "server requires TLS"},
		{"stronger auth required", bind("cn=stronger", pw), probe.OutcomeTLSError, "server requires TLS"},
		{"busy", bind("cn=busy", pw), probe.OutcomeProtocolError, "result code 51 (Busy)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "ldap", port, tc.opts)
			appWant(t, r, tc.want)
			if r.Details[probe.DetailReason] != tc.reason {
				t.Errorf("reason %q, want %q", r.Details[probe.DetailReason], tc.reason)
			}
			if strings.Contains(r.Error(), "s3cret") || strings.Contains(r.Error(), "guessed") {
				t.Errorf("the error shows the password: %v", r.Err)
			}
			if r.Details["mode"] != "plain" || r.Phases[probe.PhaseConnect] <= 0 || r.Phases[probe.PhaseRequest] <= 0 {
				t.Errorf("details %v phases %v", r.Details, r.Phases)
			}
		})
	}
}

func TestLDAPReads(t *testing.T) {
	port := (&fakeLDAP{entries: 50}).start(t)
	r := appRun(t, "ldap", port, map[string]any{"rootdse": true})
	appWant(t, r, probe.OutcomeOK)
	want := map[string]string{"naming_contexts": "dc=example,dc=org", "ldap_versions": "3", "vendor": "Example 1.0", "bind": "anonymous"}
	for k, v := range want {
		if r.Details[k] != v {
			t.Errorf("details[%s] = %q, want %q", k, r.Details[k], v)
		}
	}
	// The server offers 50 entries; the check stops at its size limit.
	r = appRun(t, "ldap", port, map[string]any{"base_dn": "dc=example,dc=org", "filter": "(uid=*)", "size_limit": 5})
	appWant(t, r, probe.OutcomeOK)
	if r.Details["entries"] != "5" {
		t.Errorf("entries %q, want 5", r.Details["entries"])
	}
	missing := (&fakeLDAP{searchCode: ldap.LDAPResultNoSuchObject}).start(t)
	r = appRun(t, "ldap", missing, map[string]any{"base_dn": "ou=gone,dc=example,dc=org"})
	appWant(t, r, probe.OutcomeProtocolError)
	if r.Details[probe.DetailReason] != "result code 32 (No Such Object)" {
		t.Errorf("reason %q", r.Details[probe.DetailReason])
	}
}

func TestLDAPTLS(t *testing.T) {
	pki := newAppPKI(t)
	withCA := map[string]any{"ca_file": pki.caFile}
	starttls := (&fakeLDAP{entries: 1, cert: &pki.valid}).start(t)
	noStartTLS := (&fakeLDAP{}).start(t)
	ldaps := (&fakeLDAP{entries: 1}).startLDAPS(t, pki.valid)
	expired := (&fakeLDAP{}).startLDAPS(t, pki.expired)
	banner := appTCPPeer(t, func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n"); appSilent(c) })
	otherCA := map[string]any{"ca_file": newAppPKI(t).caFile}

	r := appRun(t, "ldap", starttls, map[string]any{"mode": "starttls", "tls": withCA, "rootdse": true})
	appWant(t, r, probe.OutcomeOK)
	if r.Details["tls_version"] != "TLS 1.3" || r.Details["naming_contexts"] == "" || r.Phases[probe.PhaseTLS] <= 0 ||
		r.Values[ValueTLSCertExpiry] != float64(pki.notAt.Unix()) {
		t.Errorf("details %v phases %v values %v", r.Details, r.Phases, r.Values)
	}
	r = appRun(t, "ldap", ldaps, map[string]any{"mode": "ldaps", "tls": withCA, "rootdse": true})
	appWant(t, r, probe.OutcomeOK)
	if r.Details["mode"] != "ldaps" || r.Details["naming_contexts"] == "" {
		t.Errorf("details %v", r.Details)
	}

	cases := []struct {
		name   string
		port   int
		opts   map[string]any
		want   probe.Outcome
		reason string
	}{
		{"StartTLS unknown authority", starttls, map[string]any{"mode": "starttls", "tls": otherCA}, probe.OutcomeTLSError, "certificate signed by unknown authority"},
		{"StartTLS not supported", noStartTLS, map[string]any{"mode": "starttls", "tls": withCA}, probe.OutcomeProtocolError, "result code 2 (Protocol Error)"},
		{"LDAPS expired", expired, map[string]any{"mode": "ldaps", "tls": withCA}, probe.OutcomeTLSError, "certificate expired"},
		{"LDAPS on a server that is not TLS", banner, map[string]any{"mode": "ldaps", "tls": withCA}, probe.OutcomeProtocolError, ""},
		{"plain on an LDAPS server", ldaps, nil, probe.OutcomeProtocolError, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "ldap", tc.port, tc.opts)
			appWant(t, r, tc.want)
			if r.Details[probe.DetailReason] != tc.reason {
				t.Errorf("reason %q, want %q", r.Details[probe.DetailReason], tc.reason)
			}
		})
	}
}

func TestLDAPHostilePeers(t *testing.T) {
	readSome := func(c net.Conn) { _, _ = bufio.NewReader(c).Peek(1) }
	cases := map[string]struct {
		serve func(c net.Conn)
		opts  map[string]any
		want  probe.Outcome
	}{
		"silent":                  {appSilent, nil, probe.OutcomeServiceTimeout},
		"silent to StartTLS":      {appSilent, map[string]any{"mode": "starttls"}, probe.OutcomeServiceTimeout},
		"closes without answer":   {func(c net.Conn) { readSome(c) }, nil, probe.OutcomeProtocolError},
		"closes before StartTLS":  {func(c net.Conn) { readSome(c) }, map[string]any{"mode": "starttls"}, probe.OutcomeProtocolError},
		"http answer then closes": {func(c net.Conn) { readSome(c); io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n") }, nil, probe.OutcomeProtocolError},
		"garbage then silence": {func(c net.Conn) {
			readSome(c)
			io.WriteString(c, "\x02\x01\x05") // a BER integer: no LDAP message
			appSilent(c)
		}, nil, probe.OutcomeProtocolError},
		"garbage to StartTLS": {func(c net.Conn) {
			readSome(c)
			io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n")
			appSilent(c)
		}, map[string]any{"mode": "starttls"}, probe.OutcomeProtocolError},
		"endless message": {func(c net.Conn) {
			readSome(c)
			// A SEQUENCE that claims 2 GiB, then bytes without end.
			io.WriteString(c, "\x30\x84\x7f\xff\xff\xff\x04\x84\x7f\xff\xff\xf0")
			chunk := strings.Repeat("z", 64<<10)
			for range 256 { // 16 MiB at most
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}, nil, probe.OutcomeProtocolError},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			appWant(t, appRun(t, "ldap", appTCPPeer(t, tc.serve), tc.opts), tc.want)
		})
	}
	appWant(t, appRun(t, "ldap", appClosedTCPPort(t), nil), probe.OutcomeRefused)
}

func TestLDAPOptions(t *testing.T) {
	pw := appFile(t, "pw", "secret\n")
	t.Setenv("FLOWPROBE_TEST_LDAP_PW", "from-env")

	o, err := Decode("ldap", map[string]any{"bind_dn": "cn=x", "password_env": "FLOWPROBE_TEST_LDAP_PW", "mode": "starttls"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := o.(*LDAPOptions).password.Reveal(); got != "from-env" {
		t.Errorf("password from the environment %q, %v", got, err)
	}
	o, err = Decode("ldap", map[string]any{"bind_dn": "cn=x", "password_file": pw, "mode": "ldaps"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := o.(*LDAPOptions).password.Reveal(); got != "secret" {
		t.Errorf("password from a file %q, %v", got, err)
	}
	if m := (&LDAPOptions{}).mode(636); m != "ldaps" {
		t.Errorf("default mode on 636 %q", m)
	}
	if m := (&LDAPOptions{}).mode(389); m != "plain" {
		t.Errorf("default mode on 389 %q", m)
	}

	bad := map[string]map[string]any{
		"mode":                 {"mode": "ldapi"},
		"dn without password":  {"bind_dn": "cn=x"},
		"password without dn":  {"password_file": pw},
		"file and env":         {"bind_dn": "cn=x", "password_file": pw, "password_env": "FLOWPROBE_TEST_LDAP_PW"},
		"rootdse and base_dn":  {"rootdse": true, "base_dn": "dc=example,dc=org"},
		"filter":               {"base_dn": "dc=example,dc=org", "filter": "(uid=alice"},
		"scope":                {"base_dn": "dc=example,dc=org", "scope": "tree"},
		"size limit":           {"base_dn": "dc=example,dc=org", "size_limit": 100000},
		"tls with plain":       {"mode": "plain", "tls": map[string]any{"insecure_skip_verify": true}},
		"inline password":      {"bind_dn": "cn=x", "password": "secret"},
		"bind over plain":      {"bind_dn": "cn=x", "password_file": pw},
		"bind over plain mode": {"bind_dn": "cn=x", "password_file": pw, "mode": "plain"},
		"tls with missing ca":  {"mode": "ldaps", "tls": map[string]any{"ca_file": "/nonexistent/ca.pem"}},
		"unknown tls settings": {"mode": "ldaps", "tls": map[string]any{"verify": false}},
	}
	for name, raw := range bad {
		_, err := Decode("ldap", raw)
		if err == nil {
			t.Errorf("%s: %v was accepted", name, raw)
			continue
		}
		if strings.Contains(err.Error(), "secret") && name != "inline password" {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}
