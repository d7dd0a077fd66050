package main

// No secret leaves flowprobe except to the peer that needs it: a site with
// an LDAP bind password, SNMPv3 auth and priv passwords, an iSCSI CHAP
// secret and an http header secret is validated, planned, checked, probed
// and served, and no output, log line, metric, status page or API answer
// holds any of them. In-process peers on 127.0.0.1:0 prove that each
// secret was read and used.

import (
	"bufio"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/gosnmp/gosnmp"
	"github.com/prometheus/common/promslog"

	"github.com/flowprobe/flowprobe/scheduler"
)

// secretValues are distinctive random secrets, one per kind.
type secretValues struct{ ldap, snmpAuth, snmpPriv, chap, http string }

func (s secretValues) all() []string { return []string{s.ldap, s.snmpAuth, s.snmpPriv, s.chap, s.http} }

func randomSecret(t *testing.T, kind string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "fp" + kind + "-" + hex.EncodeToString(b)
}

// peerLog records what the peers saw: which secrets arrived intact.
type peerLog struct {
	mu   sync.Mutex
	used map[string]bool
}

func (p *peerLog) use(what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used[what] = true
}

func (p *peerLog) usedAll(t *testing.T, kinds ...string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range kinds {
		if !p.used[k] {
			t.Errorf("the %s peer never got the right secret: the test proves nothing for it", k)
		}
	}
}

// servePeer accepts connections on loopback until the test ends.
func servePeer(t *testing.T, serve func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// ldapPeer answers binds: success for the right password, invalid
// credentials otherwise; and unbinds by closing.
func ldapPeer(t *testing.T, password string, log *peerLog) int {
	return servePeer(t, func(c net.Conn) {
		for range 8 {
			p, err := ber.ReadPacket(c)
			if err != nil || len(p.Children) < 2 {
				return
			}
			op := p.Children[1]
			if op.Tag != 0 || len(op.Children) < 3 { // not a BindRequest: unbind
				return
			}
			code := int64(49)
			if op.Children[2].Data.String() == password {
				code = 0
				log.use("ldap")
			}
			msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
			msg.AppendChild(p.Children[0])
			resp := ber.Encode(ber.ClassApplication, ber.TypeConstructed, 1, nil, "")
			resp.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, ""))
			resp.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
			resp.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
			msg.AppendChild(resp)
			if _, err := c.Write(msg.Bytes()); err != nil {
				return
			}
		}
	})
}

// iscsiPeer is a target that asks for CHAP, checks the response against
// secret and completes the login when it matches.
func iscsiPeer(t *testing.T, secret string, log *peerLog) int {
	challenge := []byte("flowprobe-challenge!")
	return servePeer(t, func(c net.Conn) {
		rd := bufio.NewReader(c)
		for step := 0; step < 4; step++ {
			var bhs [48]byte
			if _, err := io.ReadFull(rd, bhs[:]); err != nil {
				return
			}
			n := int(bhs[5])<<16 | int(bhs[6])<<8 | int(bhs[7])
			data := make([]byte, (n+3)&^3)
			if _, err := io.ReadFull(rd, data); err != nil || bhs[0]&0x3f != 0x03 { // a Login Request only
				return
			}
			kv := map[string]string{}
			for _, pair := range strings.Split(string(data[:n]), "\x00") {
				if k, v, ok := strings.Cut(pair, "="); ok {
					kv[k] = v
				}
			}
			var flags, class byte
			var text string
			var tsih uint16
			switch {
			case kv["CHAP_R"] != "":
				h := md5.Sum(append(append([]byte{7}, secret...), challenge...))
				if kv["CHAP_R"] == "0x"+hex.EncodeToString(h[:]) {
					log.use("iscsi")
					flags, tsih = 0x83, 1 // T=1, security stage to full feature phase
				} else {
					class = 2 // authentication failure
				}
			case kv["CHAP_A"] != "":
				text = "CHAP_A=5\x00CHAP_I=7\x00CHAP_C=0x" + hex.EncodeToString(challenge) + "\x00"
			default:
				text = "AuthMethod=CHAP\x00"
			}
			out := make([]byte, 48, 48+len(text)+3)
			out[0], out[1] = 0x23, flags
			out[5], out[6], out[7] = byte(len(text)>>16), byte(len(text)>>8), byte(len(text))
			copy(out[8:14], bhs[8:14]) // ISID
			binary.BigEndian.PutUint16(out[14:], tsih)
			copy(out[16:20], bhs[16:20]) // ITT
			binary.BigEndian.PutUint32(out[24:], uint32(step))
			binary.BigEndian.PutUint32(out[28:], 1)
			binary.BigEndian.PutUint32(out[32:], 1)
			out[36] = class
			out = append(out, text...)
			out = append(out, make([]byte, (4-len(text)%4)%4)...)
			if _, err := c.Write(out); err != nil || class != 0 || tsih != 0 {
				return
			}
		}
	})
}

// snmpPeer is an SNMPv3 agent with one authPriv user: it answers engine
// discovery with a report and a GET it can decrypt with the user's keys.
func snmpPeer(t *testing.T, user, auth, priv string, log *peerLog) int {
	const engineID = "\x80\x00\x1f\x88\x80flowprobe-secrets"
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	usm := func() *gosnmp.UsmSecurityParameters {
		sp := &gosnmp.UsmSecurityParameters{
			UserName: user, AuthoritativeEngineID: engineID, AuthoritativeEngineBoots: 1, AuthoritativeEngineTime: 100,
			AuthenticationProtocol: gosnmp.SHA, AuthenticationPassphrase: auth,
			PrivacyProtocol: gosnmp.AES, PrivacyPassphrase: priv,
		}
		if err := sp.InitSecurityKeys(); err != nil {
			t.Error(err)
		}
		return sp
	}
	answer := func(req []byte) []byte {
		head, _ := (&gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel,
			MsgFlags: gosnmp.NoAuthNoPriv, SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: user}}).SnmpDecodePacket(req)
		if head == nil || head.Version != gosnmp.Version3 {
			return nil
		}
		reply := &gosnmp.SnmpPacket{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, ContextEngineID: engineID, MsgID: head.MsgID}
		if head.MsgFlags&gosnmp.AuthNoPriv == 0 { // engine discovery
			reply.MsgFlags, reply.PDUType, reply.RequestID = gosnmp.NoAuthNoPriv, gosnmp.Report, head.RequestID
			reply.SecurityParameters = &gosnmp.UsmSecurityParameters{AuthoritativeEngineID: engineID, AuthoritativeEngineBoots: 1, AuthoritativeEngineTime: 100}
			reply.Variables = []gosnmp.SnmpPDU{{Name: ".1.3.6.1.6.3.15.1.1.4.0", Type: gosnmp.Counter32, Value: uint32(1)}}
		} else {
			p, err := (&gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel,
				MsgFlags: gosnmp.AuthPriv, SecurityParameters: usm()}).SnmpDecodePacket(req)
			if err != nil || len(p.Variables) == 0 {
				return nil // wrong keys: the agent cannot read the request
			}
			log.use("snmp")
			sp := usm()
			reply.MsgFlags, reply.PDUType, reply.RequestID, reply.SecurityParameters = gosnmp.AuthPriv, gosnmp.GetResponse, p.RequestID, sp
			for _, v := range p.Variables {
				reply.Variables = append(reply.Variables, gosnmp.SnmpPDU{Name: v.Name, Type: gosnmp.OctetString, Value: []byte("secrets agent")})
			}
			if err := sp.InitPacket(reply); err != nil {
				return nil
			}
		}
		out, err := reply.MarshalMsg()
		if err != nil {
			return nil
		}
		return out
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := answer(append([]byte(nil), buf[:n]...)); out != nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// httpPeer answers 200 to a request that carries the bearer token, 401
// otherwise.
func httpPeer(t *testing.T, token string, log *peerLog) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		log.use("http")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// secretsSite starts the peers and writes a site config whose flows need
// every secret; the secrets are in private files, and the http token in
// the environment.
func secretsSite(t *testing.T) (path string, s secretValues, ports map[string]int, log *peerLog) {
	s = secretValues{
		ldap: randomSecret(t, "ldap"), snmpAuth: randomSecret(t, "auth"), snmpPriv: randomSecret(t, "priv"),
		chap: randomSecret(t, "chap"), http: randomSecret(t, "http"),
	}
	log = &peerLog{used: map[string]bool{}}
	ports = map[string]int{
		"ldap": ldapPeer(t, s.ldap, log), "snmp": snmpPeer(t, "probe", s.snmpAuth, s.snmpPriv, log),
		"iscsi": iscsiPeer(t, s.chap, log), "http": httpPeer(t, s.http, log),
	}
	dir := t.TempDir()
	file := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("FLOWPROBE_TEST_HTTP_TOKEN", "Bearer "+s.http)
	cfg := fmt.Sprintf(`site: secrets
products:
  - name: sios-lifekeeper
    self: node
    only: [s-ldap, s-snmp, s-iscsi, s-http]
    interval: 4s   # serve runs every target within one interval
    timeout: 3s
    roles:
      app:
        hosts: [127.0.0.1]
    extra_flows:
      - id: s-ldap
        source: node
        destination: app
        protocol: tcp
        ports: %d
        check: ldap
        options: {mode: plain, allow_plaintext_bind: true, bind_dn: "cn=probe,dc=example,dc=org", password_file: %s}
      - id: s-snmp
        source: node
        destination: app
        protocol: udp
        ports: %d
        check: snmp
        options: {version: "3", username: probe, auth_password_file: %s, priv_password_file: %s}
      - id: s-iscsi
        source: node
        destination: app
        protocol: tcp
        ports: %d
        check: iscsi
        options: {chap_username: probe, chap_secret_file: %s}
      - id: s-http
        source: node
        destination: app
        protocol: tcp
        ports: %d
        check: http
        options: {headers: {Authorization: {value_env: FLOWPROBE_TEST_HTTP_TOKEN}}}
`, ports["ldap"], file("ldap", s.ldap), ports["snmp"], file("auth", s.snmpAuth), file("priv", s.snmpPriv),
		ports["iscsi"], file("chap", s.chap), ports["http"])
	path = filepath.Join(dir, "site.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, s, ports, log
}

// noSecrets fails when any secret appears in out.
func noSecrets(t *testing.T, s secretValues, what, out string) {
	t.Helper()
	for _, v := range s.all() {
		if strings.Contains(out, v) {
			t.Errorf("%s shows the secret %s:\n%s", what, v, out)
		}
	}
}

func TestSecretsStayOutOfEveryOutput(t *testing.T) {
	path, s, ports, log := secretsSite(t)

	code, stdout, stderr := runCLI(t, "validate", path)
	if code != exitOK {
		t.Fatalf("validate: exit %d\n%s%s", code, stdout, stderr)
	}
	noSecrets(t, s, "validate", stdout+stderr)
	for _, args := range [][]string{
		{"plan", path}, {"plan", "--format=json", path}, {"plan", "--format=csv", path}, {"plan", "--format=markdown", path},
		{"plan", "--firewall", path}, {"plan", "--firewall", "--format=json", path},
		{"plan", "--firewall", "--format=csv", path}, {"plan", "--firewall", "--format=markdown", path},
	} {
		code, stdout, stderr := runCLI(t, args...)
		if code != exitOK {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
		noSecrets(t, s, fmt.Sprint(args), stdout+stderr)
	}
	for _, format := range []string{"text", "json", "junit", "markdown"} {
		code, stdout, stderr := runCLI(t, "check", "--config.file", path, "--output", format, "--progress", "never")
		if code != exitOK {
			t.Errorf("check --output %s: exit %d\n%s%s", format, code, stdout, stderr)
		}
		noSecrets(t, s, "check --output "+format, stdout+stderr)
	}
	for _, output := range []string{"text", "json"} {
		code, stdout, stderr := runCLI(t, "probe", "--output", output, "iscsi", fmt.Sprintf("127.0.0.1:%d", ports["iscsi"]),
			"--set", "chap_username=probe", "--set", "chap_secret_file="+filepath.Join(filepath.Dir(path), "chap"))
		if code != exitOK {
			t.Errorf("probe --output %s: exit %d\n%s%s", output, code, stdout, stderr)
		}
		noSecrets(t, s, "probe --output "+output, stdout+stderr)
	}

	o := &serveOptions{configFile: path, log: promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat()}}
	if err := o.log.Level.Set("debug"); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, o, nil)
	seen := map[string]scheduler.Status{}
	failsafe := time.After(30 * time.Second)
	for len(seen) < 4 {
		select {
		case st := <-srv.recorded:
			seen[st.Target.Flow] = st
		case <-failsafe:
			t.Fatalf("only %d of 4 targets ran:\n%s", len(seen), srv.logs)
		}
	}
	for flow, st := range seen {
		if !st.Result.Success {
			t.Errorf("serve: %s: %s (%v)", flow, st.Result.Outcome, st.Result.Err)
		}
	}
	for _, route := range []string{"/metrics", "/", "/api/v1/results"} {
		code, body := httpDo(t, "GET", srv.base+route)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", route, code)
		}
		noSecrets(t, s, "GET "+route, body)
	}
	logs := srv.logs.String()
	if strings.Count(logs, `level=DEBUG source=serve.go`) < 4 || !strings.Contains(logs, "<secret from environment variable FLOWPROBE_TEST_HTTP_TOKEN>") {
		t.Errorf("serve logged nothing at debug level: the log proves nothing:\n%s", logs)
	}
	noSecrets(t, s, "serve's log", logs)
	log.usedAll(t, "ldap", "snmp", "iscsi", "http")
}
