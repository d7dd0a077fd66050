package checks

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/flowprobe/flowprobe/probe"
)

// appUDPPeer answers each datagram to a loopback socket with what reply
// returns (nothing when nil) and returns the port.
func appUDPPeer(t *testing.T, reply func(req []byte) [][]byte) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, out := range reply(append([]byte(nil), buf[:n]...)) {
				if _, err := pc.WriteTo(out, from); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// appClosedUDPPort is a loopback UDP port nothing listens on.
func appClosedUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	return port
}

// fakeAgent answers v1/v2c GETs of the community it knows from its MIB;
// a wrong community gets no answer, as from real agents.
type fakeAgent struct {
	community string
	mib       map[string]gosnmp.SnmpPDU
	status    gosnmp.SNMPError // error-status to answer with, if any
}

func (a *fakeAgent) reply(req []byte) [][]byte {
	p, err := (&gosnmp.GoSNMP{Version: gosnmp.Version2c}).SnmpDecodePacket(req)
	if err != nil || p.Community != a.community || p.PDUType != gosnmp.GetRequest {
		return nil
	}
	resp := &gosnmp.SnmpPacket{
		Version: p.Version, Community: p.Community, PDUType: gosnmp.GetResponse, RequestID: p.RequestID,
	}
	for i, v := range p.Variables {
		pdu, ok := a.mib[v.Name]
		switch {
		case ok:
		case p.Version == gosnmp.Version1:
			resp.Error, resp.ErrorIndex = gosnmp.NoSuchName, uint8(i+1)
			pdu = gosnmp.SnmpPDU{Type: gosnmp.Null}
		default:
			pdu = gosnmp.SnmpPDU{Type: gosnmp.NoSuchObject}
		}
		pdu.Name = v.Name
		resp.Variables = append(resp.Variables, pdu)
	}
	if a.status != gosnmp.NoError {
		resp.Error, resp.ErrorIndex = a.status, 1
	}
	out, err := resp.MarshalMsg()
	if err != nil {
		return nil
	}
	return [][]byte{out}
}

func labMIB() map[string]gosnmp.SnmpPDU {
	return map[string]gosnmp.SnmpPDU{
		snmpSysDescr:         {Type: gosnmp.OctetString, Value: []byte("Linux lab 6.1.0\nx86_64\x00" + strings.Repeat("x", 400))},
		snmpSysUpTime:        {Type: gosnmp.TimeTicks, Value: uint32(123456)},
		".1.3.6.1.2.1.1.5.0": {Type: gosnmp.OctetString, Value: []byte("lab.example.org")},
	}
}

func TestSNMPGet(t *testing.T) {
	public := appUDPPeer(t, (&fakeAgent{community: "public", mib: labMIB()}).reply)
	r := appRun(t, "snmp", public, nil)
	appWant(t, r, probe.OutcomeOK)
	if d := r.Details["sys_descr"]; !strings.HasPrefix(d, "Linux lab 6.1.0 x86_64 xxx") || len(d) > 256+len("…") {
		t.Errorf("sys_descr %q: want printable and at most 256 bytes", d)
	}
	if r.Details["sys_uptime"] != "20m34.56s" || r.Details["version"] != "2c" {
		t.Errorf("details %v", r.Details)
	}
	if r.Phases[probe.PhaseRequest] <= 0 {
		t.Errorf("phases %v", r.Phases)
	}
	r = appRun(t, "snmp", public, map[string]any{"version": 1, "oids": []string{"1.3.6.1.2.1.1.5.0"}})
	appWant(t, r, probe.OutcomeOK)
	if r.Details[".1.3.6.1.2.1.1.5.0"] != "lab.example.org" {
		t.Errorf("details %v", r.Details)
	}

	private := appUDPPeer(t, (&fakeAgent{community: "n0t-public", mib: labMIB()}).reply)
	r = appRun(t, "snmp", private, map[string]any{"community_file": appFile(t, "community", "n0t-public\n")})
	appWant(t, r, probe.OutcomeOK)
	// A wrong community: the agent stays silent, like a drop.
	r = appRun(t, "snmp", private, nil)
	appWant(t, r, probe.OutcomeTimeout)
	if !strings.Contains(r.Details[probe.DetailReason], "community") {
		t.Errorf("reason %q does not name the community", r.Details[probe.DetailReason])
	}
	if strings.Contains(r.Error(), "public") {
		t.Errorf("the error shows the community: %v", r.Err)
	}
}

func TestSNMPAgentErrors(t *testing.T) {
	missing := []string{"1.3.6.1.2.1.1.5.0", "1.3.6.1.4.1.99999.1.0"}
	cases := []struct {
		name   string
		agent  *fakeAgent
		opts   map[string]any
		want   probe.Outcome
		detail string
	}{
		{"v2c no such object", &fakeAgent{community: "public", mib: labMIB()},
			map[string]any{"oids": missing}, probe.OutcomeProtocolError, ".1.3.6.1.4.1.99999.1.0"},
		{"v1 no such name", &fakeAgent{community: "public", mib: labMIB()},
			map[string]any{"version": "1", "oids": missing}, probe.OutcomeProtocolError, ".1.3.6.1.4.1.99999.1.0"},
		{"authorization error", &fakeAgent{community: "public", mib: labMIB(), status: gosnmp.AuthorizationError},
			nil, probe.OutcomeAuthError, ""},
		{"general error", &fakeAgent{community: "public", mib: labMIB(), status: gosnmp.GenErr},
			nil, probe.OutcomeProtocolError, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "snmp", appUDPPeer(t, tc.agent.reply), tc.opts)
			appWant(t, r, tc.want)
			if r.Details["missing_oids"] != tc.detail {
				t.Errorf("missing_oids %q, want %q", r.Details["missing_oids"], tc.detail)
			}
			if r.Details[probe.DetailReason] == "" {
				t.Error("no reason")
			}
		})
	}
}

func TestSNMPHostilePeers(t *testing.T) {
	cases := map[string]struct {
		reply func([]byte) [][]byte
		want  probe.Outcome
	}{
		"silent":  {func([]byte) [][]byte { return nil }, probe.OutcomeTimeout},
		"garbage": {func([]byte) [][]byte { return [][]byte{[]byte("HTTP/1.1 400 Bad Request\r\n\r\n")} }, probe.OutcomeProtocolError},
		"huge datagram": {func([]byte) [][]byte {
			return [][]byte{append([]byte{0x30, 0x82, 0xff, 0xf0}, make([]byte, 65000)...)}
		}, probe.OutcomeProtocolError},
		"echo of the request": {func(req []byte) [][]byte { return [][]byte{req} }, probe.OutcomeProtocolError},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			appWant(t, appRun(t, "snmp", appUDPPeer(t, tc.reply), nil), tc.want)
		})
	}
	appWant(t, appRun(t, "snmp", appClosedUDPPort(t), nil), probe.OutcomeRefused)
}

// TestSNMPv3Rejected answers engine discovery like an agent, then the
// request with an unauthenticated usmStatsUnknownUserNames report, as
// net-snmp does for an unknown user: the client cannot authenticate it.
func TestSNMPv3Rejected(t *testing.T) {
	const engineID = "\x80\x00\x1f\x88\x80flowprobe"
	report := func(req []byte, counter string) [][]byte {
		parser := &gosnmp.GoSNMP{
			Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel,
			MsgFlags: gosnmp.NoAuthNoPriv, SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: "agent"},
		}
		p, _ := parser.SnmpDecodePacket(req) // the header is enough
		if p == nil || p.Version != gosnmp.Version3 {
			return nil
		}
		out, err := (&gosnmp.SnmpPacket{
			Version: gosnmp.Version3, MsgFlags: gosnmp.NoAuthNoPriv, SecurityModel: gosnmp.UserSecurityModel,
			SecurityParameters: &gosnmp.UsmSecurityParameters{
				AuthoritativeEngineID: engineID, AuthoritativeEngineBoots: 1, AuthoritativeEngineTime: 100,
			},
			ContextEngineID: engineID, PDUType: gosnmp.Report, MsgID: p.MsgID, RequestID: p.RequestID,
			Variables: []gosnmp.SnmpPDU{{Name: counter, Type: gosnmp.Counter32, Value: uint32(1)}},
		}).MarshalMsg()
		if err != nil {
			return nil
		}
		return [][]byte{out}
	}
	var (
		mu    sync.Mutex
		count int
	)
	port := appUDPPeer(t, func(req []byte) [][]byte {
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		if n == 1 {
			return report(req, ".1.3.6.1.6.3.15.1.1.4.0") // usmStatsUnknownEngineIDs
		}
		return report(req, ".1.3.6.1.6.3.15.1.1.3.0") // usmStatsUnknownUserNames
	})
	r := appRun(t, "snmp", port, map[string]any{
		"version": "3", "username": "nobody",
		"auth_password_file": appFile(t, "auth", "auth-pass-123\n"),
		"priv_password_file": appFile(t, "priv", "priv-pass-123\n"),
	})
	appWant(t, r, probe.OutcomeAuthError)
	if mu.Lock(); count != 2 {
		t.Errorf("the agent got %d messages, want discovery and the request", count)
	}
	mu.Unlock()
	if strings.Contains(r.Error(), "pass-123") {
		t.Errorf("the error shows a password: %v", r.Err)
	}
}

func TestSNMPOptions(t *testing.T) {
	auth := appFile(t, "auth", "auth-pass-123\n")
	priv := appFile(t, "priv", "priv-pass-123\n")

	o, err := Decode("snmp", map[string]any{"version": 3, "username": "u", "auth_password_file": auth, "priv_password_file": priv})
	if err != nil {
		t.Fatal(err)
	}
	v3 := o.(*SNMPOptions)
	if v3.SecurityLevel != "authPriv" || v3.authProto != gosnmp.SHA || v3.privProto != gosnmp.AES {
		t.Errorf("v3 defaults: level %s auth %v priv %v", v3.SecurityLevel, v3.authProto, v3.privProto)
	}
	if c, err := v3.reveal(); err != nil || c.auth != "auth-pass-123" || c.priv != "priv-pass-123" {
		t.Errorf("v3 passwords not read from their files: %v", err)
	}
	o, err = Decode("snmp", map[string]any{"version": "3", "username": "u", "auth_password_file": auth, "auth_protocol": "sha256"})
	if err != nil || o.(*SNMPOptions).flags != gosnmp.AuthNoPriv || o.(*SNMPOptions).authProto != gosnmp.SHA256 {
		t.Errorf("authNoPriv: %v", err)
	}
	o, err = Decode("snmp", map[string]any{"oids": []string{"1.3.6.1.2.1.1.5.0"}})
	if err != nil || o.(*SNMPOptions).OIDs[0] != ".1.3.6.1.2.1.1.5.0" || !o.(*SNMPOptions).community.IsZero() {
		t.Errorf("oids and default community: %v", err)
	}

	many := make([]string, snmpMaxOIDs+1)
	for i := range many {
		many[i] = "1.3.6.1.2.1.1.1.0"
	}
	bad := map[string]map[string]any{
		"version":             {"version": "2"},
		"bad oid":             {"oids": []string{"sysDescr.0"}},
		"too many oids":       {"oids": many},
		"v3 on v2c":           {"username": "u"},
		"no username":         {"version": "3"},
		"community on v3":     {"version": "3", "username": "u", "community_file": auth},
		"inline community":    {"community": "public"},
		"community both ways": {"community_file": auth, "community_env": "FLOWPROBE_TEST_SNMP_COMMUNITY"},
		"auth protocol":       {"version": "3", "username": "u", "auth_password_file": auth, "auth_protocol": "SHA1024"},
		"priv protocol":       {"version": "3", "username": "u", "auth_password_file": auth, "priv_password_file": priv, "priv_protocol": "ROT13"},
		"level":               {"version": "3", "username": "u", "security_level": "authAndPriv"},
		"authPriv, no priv":   {"version": "3", "username": "u", "security_level": "authPriv", "auth_password_file": auth},
		"noAuth, a password":  {"version": "3", "username": "u", "security_level": "noAuthNoPriv", "auth_password_file": auth},
	}
	for name, raw := range bad {
		_, err := Decode("snmp", raw)
		if err == nil {
			t.Errorf("%s: %v was accepted", name, raw)
		} else if strings.Contains(err.Error(), "pass-123") {
			t.Errorf("%s: the error shows a password: %v", name, err)
		}
	}
}
