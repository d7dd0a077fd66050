package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/flowprobe/flowprobe/probe"
)

// OIDs the snmp check reads by default.
const (
	snmpSysDescr  = ".1.3.6.1.2.1.1.1.0"
	snmpSysUpTime = ".1.3.6.1.2.1.1.3.0"
)

const (
	// snmpMaxOIDs bounds the oids option.
	snmpMaxOIDs = 32
	// snmpDefaultTimeout is the request timeout when the context has no
	// deadline.
	snmpDefaultTimeout = 5 * time.Second
)

var snmpOIDPattern = regexp.MustCompile(`^\.?[0-9]+(\.[0-9]+)+$`)

var snmpKind = register(Spec[SNMPOptions]{
	Name:      "snmp",
	Transport: probe.UDP,
	Summary:   "SNMP v1, v2c or v3 GET of sysDescr/sysUpTime or configured OIDs",
	Defaults:  newSNMPOptions,
	Hints:     []Hint{{App: "snmp"}},
	Run:       runSNMP,

	DefaultPort: 161,
})

// SNMPOptions are the options of the snmp check.
type SNMPOptions struct {
	// Version is 1, 2c (default) or 3.
	Version string `yaml:"version" schema:"string|integer"` // version: 3 reads as a number
	// The community of versions 1 and 2c, from a file or the environment;
	// "public" when neither is set.
	CommunityFile string `yaml:"community_file"`
	CommunityEnv  string `yaml:"community_env"`

	// Version 3 (USM).
	Username string `yaml:"username"`
	// SecurityLevel is noAuthNoPriv, authNoPriv or authPriv; empty means
	// the highest level the given passwords allow.
	SecurityLevel    string `yaml:"security_level"`
	AuthProtocol     string `yaml:"auth_protocol"` // MD5, SHA (default), SHA224, SHA256, SHA384, SHA512
	AuthPasswordFile string `yaml:"auth_password_file"`
	AuthPasswordEnv  string `yaml:"auth_password_env"`
	PrivProtocol     string `yaml:"priv_protocol"` // DES, AES (default), AES192, AES256, AES192C, AES256C
	PrivPasswordFile string `yaml:"priv_password_file"`
	PrivPasswordEnv  string `yaml:"priv_password_env"`
	ContextName      string `yaml:"context_name"`

	// OIDs to GET; default sysDescr.0 and sysUpTime.0.
	OIDs []string `yaml:"oids"`

	// Parsed by Validate. The secrets are named by Validate and read when
	// the check runs; a zero community means "public".
	version   gosnmp.SnmpVersion
	community Secret
	flags     gosnmp.SnmpV3MsgFlags
	authProto gosnmp.SnmpV3AuthProtocol
	privProto gosnmp.SnmpV3PrivProtocol
	authPass  Secret
	privPass  Secret
}

// snmpMinPassword is the shortest USM password (RFC 3414 §11.2).
const snmpMinPassword = 8

func (o *SNMPOptions) secrets() []Secret {
	var out []Secret
	for _, s := range []Secret{o.community, o.authPass, o.privPass} {
		if !s.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// snmpCreds are the secrets of one run, read from their sources.
type snmpCreds struct{ community, auth, priv string }

// reveal reads the secrets the options name.
func (o *SNMPOptions) reveal() (snmpCreds, error) {
	c := snmpCreds{community: "public"}
	var err error
	read := func(s Secret, dst *string) {
		if err == nil && !s.IsZero() {
			*dst, err = s.Reveal()
		}
	}
	read(o.community, &c.community)
	read(o.authPass, &c.auth)
	read(o.privPass, &c.priv)
	return c, err
}

func newSNMPOptions() *SNMPOptions {
	return &SNMPOptions{Version: "2c", OIDs: []string{snmpSysDescr, snmpSysUpTime}}
}

var snmpAuthProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224,
	"SHA256": gosnmp.SHA256, "SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
}

var snmpPrivProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192,
	"AES256": gosnmp.AES256, "AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
}

var snmpLevels = map[string]gosnmp.SnmpV3MsgFlags{
	"noAuthNoPriv": gosnmp.NoAuthNoPriv, "authNoPriv": gosnmp.AuthNoPriv, "authPriv": gosnmp.AuthPriv,
}

// Validate checks the options and names the sources of the community or
// the v3 passwords, which are read when the check runs.
func (o *SNMPOptions) Validate() error {
	var errs []error
	switch o.Version {
	case "1":
		o.version = gosnmp.Version1
	case "", "2c":
		o.Version, o.version = "2c", gosnmp.Version2c
	case "3":
		o.version = gosnmp.Version3
	default:
		errs = append(errs, fmt.Errorf("version %q: want 1, 2c or 3", o.Version))
	}
	if o.version == gosnmp.Version3 {
		errs = append(errs, o.validateV3()...)
	} else {
		for name, v := range map[string]string{
			"username": o.Username, "security_level": o.SecurityLevel, "auth_protocol": o.AuthProtocol,
			"auth_password_file": o.AuthPasswordFile, "auth_password_env": o.AuthPasswordEnv,
			"priv_protocol": o.PrivProtocol, "priv_password_file": o.PrivPasswordFile,
			"priv_password_env": o.PrivPasswordEnv, "context_name": o.ContextName,
		} {
			if v != "" {
				errs = append(errs, fmt.Errorf("%s: only for version 3", name))
			}
		}
		c, err := newSecret("community", o.CommunityFile, o.CommunityEnv)
		if err != nil {
			errs = append(errs, err)
		}
		o.community = c
	}
	if len(o.OIDs) == 0 {
		o.OIDs = []string{snmpSysDescr, snmpSysUpTime}
	}
	if len(o.OIDs) > snmpMaxOIDs {
		errs = append(errs, fmt.Errorf("oids: %d of them, at most %d", len(o.OIDs), snmpMaxOIDs))
	}
	for i, oid := range o.OIDs {
		if !snmpOIDPattern.MatchString(oid) {
			errs = append(errs, fmt.Errorf("oids: %q is not a numeric OID like 1.3.6.1.2.1.1.1.0", oid))
			continue
		}
		if oid[0] != '.' {
			o.OIDs[i] = "." + oid
		}
	}
	return errors.Join(errs...)
}

func (o *SNMPOptions) validateV3() []error {
	var errs []error
	if o.CommunityFile != "" || o.CommunityEnv != "" {
		errs = append(errs, errors.New("community_file/community_env: not for version 3"))
	}
	if o.Username == "" {
		errs = append(errs, errors.New("username: required for version 3"))
	}
	hasAuth := o.AuthPasswordFile != "" || o.AuthPasswordEnv != ""
	hasPriv := o.PrivPasswordFile != "" || o.PrivPasswordEnv != ""
	level := o.SecurityLevel
	if level == "" {
		switch {
		case hasPriv:
			level = "authPriv"
		case hasAuth:
			level = "authNoPriv"
		default:
			level = "noAuthNoPriv"
		}
		o.SecurityLevel = level
	}
	flags, ok := snmpLevels[level]
	if !ok {
		return append(errs, fmt.Errorf("security_level %q: want noAuthNoPriv, authNoPriv or authPriv", level))
	}
	o.flags = flags
	if flags&gosnmp.AuthNoPriv == 0 {
		if hasAuth || hasPriv || o.AuthProtocol != "" || o.PrivProtocol != "" {
			errs = append(errs, errors.New("security_level noAuthNoPriv takes no protocols or passwords"))
		}
		return errs
	}
	if o.AuthProtocol == "" {
		o.AuthProtocol = "SHA"
	}
	if o.authProto, ok = snmpAuthProtocols[strings.ToUpper(o.AuthProtocol)]; !ok {
		errs = append(errs, fmt.Errorf("auth_protocol %q: want MD5, SHA, SHA224, SHA256, SHA384 or SHA512", o.AuthProtocol))
	}
	pw, err := newSecret("auth_password", o.AuthPasswordFile, o.AuthPasswordEnv)
	if err == nil && pw.IsZero() {
		err = requireSecret("auth_password")
	}
	if err != nil {
		errs = append(errs, err)
	}
	o.authPass = pw.atLeast(snmpMinPassword)
	if flags&gosnmp.AuthPriv != gosnmp.AuthPriv {
		if hasPriv || o.PrivProtocol != "" {
			errs = append(errs, errors.New("security_level authNoPriv takes no priv_protocol or priv password"))
		}
		return errs
	}
	if o.PrivProtocol == "" {
		o.PrivProtocol = "AES"
	}
	if o.privProto, ok = snmpPrivProtocols[strings.ToUpper(o.PrivProtocol)]; !ok {
		errs = append(errs, fmt.Errorf("priv_protocol %q: want DES, AES, AES192, AES256, AES192C or AES256C", o.PrivProtocol))
	}
	pw, err = newSecret("priv_password", o.PrivPasswordFile, o.PrivPasswordEnv)
	if err == nil && pw.IsZero() {
		err = requireSecret("priv_password")
	}
	if err != nil {
		errs = append(errs, err)
	}
	o.privPass = pw.atLeast(snmpMinPassword)
	return errs
}

// client builds the gosnmp client for addr with the credentials c. Port,
// timeout and retries are set explicitly: a zero GoSNMP does not take
// gosnmp.Default's.
func (o *SNMPOptions) client(ctx context.Context, t *probe.Target, host string, network string, c snmpCreds) *gosnmp.GoSNMP {
	timeout := snmpDefaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Millisecond, time.Until(dl))
	}
	g := &gosnmp.GoSNMP{
		Target:    host,
		Port:      uint16(t.Port),
		Transport: network,
		Version:   o.version,
		Community: c.community,
		Context:   ctx,
		Timeout:   timeout,
		Retries:   0,
		MaxOids:   snmpMaxOIDs,
	}
	if t.SourceAddress != "" {
		g.LocalAddr = net.JoinHostPort(t.SourceAddress, "0")
	}
	if o.version == gosnmp.Version3 {
		g.SecurityModel = gosnmp.UserSecurityModel
		g.MsgFlags = o.flags
		g.ContextName = o.ContextName
		g.SecurityParameters = &gosnmp.UsmSecurityParameters{
			UserName:                 o.Username,
			AuthenticationProtocol:   o.authProto,
			AuthenticationPassphrase: c.auth,
			PrivacyProtocol:          o.privProto,
			PrivacyPassphrase:        c.priv,
		}
		if o.flags&gosnmp.AuthNoPriv == 0 {
			g.SecurityParameters = &gosnmp.UsmSecurityParameters{UserName: o.Username}
		}
	}
	return g
}

// runSNMP sends one GET of the configured OIDs over a connected UDP
// socket, so an ICMP refusal ends the check at once.
func runSNMP(ctx context.Context, t probe.Target, o *SNMPOptions, r *probe.Result) error {
	r.SetDetail("version", o.Version)
	creds, err := o.reveal() // before sending: an unreadable secret sends nothing
	if err != nil {
		return err
	}
	addr, err := resolve(ctx, &t, r)
	if err != nil {
		return err
	}
	network := "udp6"
	if addr.Is4() {
		network = "udp4"
	}
	g := o.client(ctx, &t, addr.String(), network, creds)

	start := time.Now()
	err = g.Connect()
	r.Phases[probe.PhaseConnect] = time.Since(start)
	if err != nil {
		return fmt.Errorf("snmp: %w", err)
	}
	defer g.Close()
	release := stopOnDone(ctx, g.Conn)
	defer release()

	start = time.Now()
	pkt, err := g.Get(o.OIDs)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	if err != nil {
		err = snmpError(o, err)
		if classifyPath(err) == probe.OutcomeTimeout && o.version != gosnmp.Version3 {
			r.SetDetail(probe.DetailReason, "no answer: the path is blocked, or the agent ignores a wrong community")
		} else if classifyPath(err) == probe.OutcomeAuthError {
			r.SetDetail(probe.DetailReason, "the agent rejected the SNMPv3 user or its keys")
		}
		return err
	}
	answered(r)
	return snmpJudge(o, pkt, r)
}

// snmpError maps gosnmp's errors. gosnmp reports a v3 reply that fails
// authentication (a wrong auth password, or an unknown user whose report
// the agent cannot authenticate) only as text.
func snmpError(o *SNMPOptions, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, gosnmp.ErrUnknownUsername), errors.Is(err, gosnmp.ErrWrongDigest),
		errors.Is(err, gosnmp.ErrUnknownSecurityLevel), errors.Is(err, gosnmp.ErrDecryption),
		strings.Contains(msg, "not authentic"), strings.Contains(msg, "is not authenticated but user"):
		return Fail(probe.OutcomeAuthError, "snmp v%s get: %w", o.Version, err)
	case errors.Is(err, gosnmp.ErrMaxRetriesExceeded):
		return fmt.Errorf("snmp v%s get: %w: %w", o.Version, err, context.DeadlineExceeded)
	}
	return fmt.Errorf("snmp v%s get: %w", o.Version, err)
}

// snmpJudge checks the agent's answer and records what it said.
func snmpJudge(o *SNMPOptions, pkt *gosnmp.SnmpPacket, r *probe.Result) error {
	if pkt.PDUType != gosnmp.GetResponse {
		return Fail(probe.OutcomeProtocolError, "snmp get: the answer is a %s, not a response", pkt.PDUType)
	}
	if pkt.Error != gosnmp.NoError {
		oid := ""
		if i := int(pkt.ErrorIndex) - 1; i >= 0 && i < len(o.OIDs) {
			oid = o.OIDs[i]
		}
		switch pkt.Error {
		case gosnmp.NoSuchName:
			r.SetDetail("missing_oids", oid)
			r.SetDetail(probe.DetailReason, "the agent has no object "+oid)
			return Fail(probe.OutcomeProtocolError, "snmp get: noSuchName %s", oid)
		case gosnmp.AuthorizationError, gosnmp.NoAccess:
			r.SetDetail(probe.DetailReason, "the agent denied access: "+pkt.Error.String())
			return Fail(probe.OutcomeAuthError, "snmp get: %s", pkt.Error)
		}
		r.SetDetail(probe.DetailReason, "the agent answered with error "+pkt.Error.String())
		return Fail(probe.OutcomeProtocolError, "snmp get: error-status %s at %s", pkt.Error, oid)
	}
	if len(pkt.Variables) != len(o.OIDs) {
		return Fail(probe.OutcomeProtocolError, "snmp get: %d variables for %d OIDs", len(pkt.Variables), len(o.OIDs))
	}
	var missing []string
	for _, v := range pkt.Variables {
		switch v.Type {
		case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView:
			missing = append(missing, v.Name)
			continue
		}
		switch v.Name {
		case snmpSysDescr:
			r.SetDetail("sys_descr", snmpValue(v, 256))
		case snmpSysUpTime:
			if ticks, ok := v.Value.(uint32); ok && v.Type == gosnmp.TimeTicks {
				r.SetDetail("sys_uptime", (time.Duration(ticks) * 10 * time.Millisecond).String())
			} else {
				r.SetDetail("sys_uptime", snmpValue(v, 64))
			}
		default:
			r.SetDetail(v.Name, snmpValue(v, 128))
		}
	}
	if len(missing) > 0 {
		list := strings.Join(missing, " ")
		r.SetDetail("missing_oids", list)
		r.SetDetail(probe.DetailReason, "the agent has no object "+list)
		return Fail(probe.OutcomeProtocolError, "snmp get: no such object: %s", list)
	}
	return nil
}

// snmpValue renders a varbind's value as printable text of at most n
// bytes.
func snmpValue(v gosnmp.SnmpPDU, n int) string {
	var s string
	switch val := v.Value.(type) {
	case []byte:
		s = string(val)
	case string:
		s = val
	case nil:
		s = v.Type.String()
	default:
		s = fmt.Sprint(val)
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return ' '
		}
		return r
	}, s)
	return truncateDetail(strings.TrimSpace(s), n)
}
