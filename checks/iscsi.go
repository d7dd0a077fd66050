package checks

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// DefaultISCSIInitiatorName is the initiator name the iscsi check logs in
// with unless initiator_name is set.
const DefaultISCSIInitiatorName = "iqn.2024-01.org.flowprobe:probe"

const (
	iscsiDefaultPort = 3260
	// iscsiMaxLoginPDUs bounds the login: security (with CHAP: offer,
	// CHAP_A, CHAP_R) and operational stage take five requests at most, one
	// more leaves room for a target that answers T=0 once.
	iscsiMaxLoginPDUs = 6
	// iscsiMaxTextPDUs bounds the Text Requests of one SendTargets exchange.
	iscsiMaxTextPDUs = 8
	// iscsiLogoutWait bounds the best-effort logout after a successful run.
	iscsiLogoutWait = time.Second
	// Bounds on what SendTargets answers put into Details.
	iscsiDetailTargets    = 16
	iscsiDetailTargetsLen = 1024
	// iscsiMaxNameLen is the longest iSCSI name (RFC 7143 §4.2.7.1).
	iscsiMaxNameLen = 223
)

// ISCSIOptions are the options of the iscsi check.
type ISCSIOptions struct {
	// Target is the iSCSI name of a target to log in to in a normal
	// session. Empty (the default) logs in to a discovery session.
	Target string `yaml:"target"`
	// InitiatorName is the iSCSI name the check logs in as.
	InitiatorName string `yaml:"initiator_name"`
	// CHAPUsername turns on CHAP (MD5) authentication; the secret comes
	// from CHAPSecretFile or CHAPSecretEnv.
	CHAPUsername   string `yaml:"chap_username"`
	CHAPSecretFile string `yaml:"chap_secret_file"`
	CHAPSecretEnv  string `yaml:"chap_secret_env"`
	// SendTargets asks a discovery session for its targets (SendTargets=All).
	SendTargets bool `yaml:"send_targets"`
	// ExpectTarget is an iSCSI name that SendTargets must list.
	ExpectTarget string `yaml:"expect_target"`

	// chap holds the CHAP secret read by Validate. It is a pointer so that
	// printing the options shows an address, never the secret.
	chap *iscsiSecret
}

type iscsiSecret struct{ b []byte }

func newISCSIOptions() any {
	return &ISCSIOptions{InitiatorName: DefaultISCSIInitiatorName}
}

// Validate checks the names and reads the CHAP secret.
func (o *ISCSIOptions) Validate() error {
	var errs []error
	if o.InitiatorName == "" {
		o.InitiatorName = DefaultISCSIInitiatorName
	}
	if err := checkISCSIName(o.InitiatorName); err != nil {
		errs = append(errs, fmt.Errorf("initiator_name: %w", err))
	}
	if o.Target != "" {
		if err := checkISCSIName(o.Target); err != nil {
			errs = append(errs, fmt.Errorf("target: %w", err))
		}
		if o.SendTargets {
			errs = append(errs, errors.New("send_targets works in a discovery session: leave target empty"))
		}
	}
	if o.ExpectTarget != "" {
		if err := checkISCSIName(o.ExpectTarget); err != nil {
			errs = append(errs, fmt.Errorf("expect_target: %w", err))
		}
		if !o.SendTargets {
			errs = append(errs, errors.New("expect_target needs send_targets: true"))
		}
	}
	hasSecret := o.CHAPSecretFile != "" || o.CHAPSecretEnv != ""
	switch {
	case o.CHAPUsername == "" && hasSecret:
		errs = append(errs, errors.New("chap_secret_file/chap_secret_env need chap_username"))
	case o.CHAPUsername != "":
		s, err := readSecret("chap_secret", o.CHAPSecretFile, o.CHAPSecretEnv)
		switch {
		case err != nil:
			errs = append(errs, err)
		case s == "":
			errs = append(errs, errors.New("chap_secret: empty"))
		default:
			o.chap = &iscsiSecret{b: []byte(s)}
		}
	}
	return errors.Join(errs...)
}

// checkISCSIName accepts the three iSCSI name formats of RFC 7143 §4.2.7
// (iqn., eui., naa.) in their normalised, lower-case form.
func checkISCSIName(n string) error {
	if len(n) > iscsiMaxNameLen {
		return fmt.Errorf("%q is longer than %d bytes", iscsiTrunc(n, 40), iscsiMaxNameLen)
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return fmt.Errorf("%q: an iSCSI name has only lower-case letters, digits, '-', '.' and ':'", iscsiTrunc(n, 40))
		}
	}
	isHex := func(s string, lens ...int) bool {
		for _, c := range s {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		for _, l := range lens {
			if len(s) == l {
				return true
			}
		}
		return false
	}
	switch {
	case strings.HasPrefix(n, "iqn."):
		// iqn.yyyy-mm.reversed.domain[:anything]
		rest := n[4:]
		if len(rest) < 9 || rest[4] != '-' || rest[7] != '.' {
			return fmt.Errorf("%q: want iqn.yyyy-mm.naming-authority[:name]", n)
		}
		if _, err := strconv.Atoi(rest[:4]); err != nil {
			return fmt.Errorf("%q: want iqn.yyyy-mm.naming-authority[:name]", n)
		}
		if _, err := strconv.Atoi(rest[5:7]); err != nil {
			return fmt.Errorf("%q: want iqn.yyyy-mm.naming-authority[:name]", n)
		}
		return nil
	case strings.HasPrefix(n, "eui."):
		if !isHex(n[4:], 16) {
			return fmt.Errorf("%q: want eui. and 16 hex digits", n)
		}
		return nil
	case strings.HasPrefix(n, "naa."):
		if !isHex(n[4:], 16, 32) {
			return fmt.Errorf("%q: want naa. and 16 or 32 hex digits", n)
		}
		return nil
	}
	return fmt.Errorf("%q: an iSCSI name starts with iqn., eui. or naa.", iscsiTrunc(n, 40))
}

// iscsiOptions returns the target's options, validated.
func iscsiOptions(t *probe.Target) (*ISCSIOptions, error) {
	switch o := t.Options.(type) {
	case nil:
		return newISCSIOptions().(*ISCSIOptions), nil
	case *ISCSIOptions:
		if o.CHAPUsername != "" && o.chap == nil {
			// Options built in code rather than decoded: read the
			// secret now, into a copy (runs may share o).
			c := *o
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("iscsi options: %w", err)
			}
			return &c, nil
		}
		if o.InitiatorName == "" {
			c := *o
			c.InitiatorName = DefaultISCSIInitiatorName
			return &c, nil
		}
		return o, nil
	default:
		return nil, fmt.Errorf("iscsi check: options of type %T, want *ISCSIOptions", t.Options)
	}
}

// checkISCSI logs in to the target's iSCSI portal: a discovery session, or
// a normal session to options.target, with CHAP when configured; optionally
// asks for SendTargets; then logs out. The target's login status decides
// the outcome (see iscsiStatusError).
func checkISCSI(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	o, err := iscsiOptions(&t)
	if err != nil {
		return finish(&r, err)
	}
	port := t.Port
	if port == 0 {
		port = iscsiDefaultPort
	}
	conn, err := dialPort(ctx, &t, "tcp", port, &r)
	if err != nil {
		return finish(&r, err)
	}
	defer conn.Close()
	defer stopOnDone(ctx, conn)()

	s := newISCSISession(conn, o)
	start := time.Now()
	err = s.run(ctx, &r)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	return finish(&r, err)
}

// iscsiSession is one connection's worth of the iSCSI conversation.
type iscsiSession struct {
	conn      net.Conn
	rd        *bufio.Reader
	o         *ISCSIOptions
	isid      [6]byte
	itt       uint32 // the next Initiator Task Tag
	cmdSN     uint32
	expStatSN uint32
	tsih      uint16
	broken    bool // a read or write failed: no logout
	targets   []iscsiAdvertised
}

// iscsiAdvertised is one target of a SendTargets answer.
type iscsiAdvertised struct {
	Name      string
	Addresses []string
}

func newISCSISession(conn net.Conn, o *ISCSIOptions) *iscsiSession {
	s := &iscsiSession{conn: conn, rd: bufio.NewReaderSize(conn, 4096), o: o, cmdSN: 1}
	// ISID of the random type (RFC 7143 §11.12.5): T=10, A=0, B and C a
	// 24-bit random number, D=0.
	rnd := rand.Uint32()
	s.isid = [6]byte{0x80, byte(rnd >> 16), byte(rnd >> 8), byte(rnd), 0, 0}
	s.itt = rand.Uint32() &^ (1 << 31) // never the reserved 0xffffffff
	return s
}

func (s *iscsiSession) nextITT() uint32 {
	t := s.itt
	s.itt = (s.itt + 1) &^ (1 << 31)
	return t
}

func (s *iscsiSession) run(ctx context.Context, r *probe.Result) error {
	if s.o.Target == "" {
		r.SetDetail("session_type", "discovery")
	} else {
		r.SetDetail("session_type", "normal")
	}
	redirected, err := s.login(r)
	if err != nil || redirected {
		return err
	}
	if s.o.SendTargets {
		err = s.sendTargets(r)
	}
	if !s.broken {
		s.logout(ctx, r)
	}
	return err
}

func (s *iscsiSession) send(what string, p iscsiPDU) error {
	if _, err := s.conn.Write(p.marshal()); err != nil {
		s.broken = true
		return fmt.Errorf("iscsi %s: send: %w", what, err)
	}
	return nil
}

// receive reads the next PDU, which must have opcode want (or be a Reject,
// which ends the run). The opcode is checked before the data segment is
// read, so something that is not iSCSI at all is named as such.
func (s *iscsiSession) receive(what string, want byte, wantName string) (iscsiPDU, error) {
	p, err := readISCSIBHS(s.rd)
	if err == nil {
		switch p.opcode() {
		case want, iscsiOpReject:
			p, err = readISCSIData(s.rd, p)
		default:
			s.broken = true
			return p, Fail(probe.OutcomeProtocolError, "iscsi %s: expected a %s (opcode 0x%02x), got opcode 0x%02x", what, wantName, want, p.opcode())
		}
	}
	if err != nil {
		s.broken = true
		if errors.Is(err, io.EOF) {
			return p, Fail(probe.OutcomeProtocolError, "iscsi %s: the target closed the connection without answering: %w", what, err)
		}
		return p, fmt.Errorf("iscsi %s: receive: %w", what, err)
	}
	if p.opcode() == iscsiOpReject {
		rj, _ := parseISCSIReject(p)
		s.broken = true
		return p, Fail(probe.OutcomeProtocolError, "iscsi %s: the target rejected the request: %s", what, iscsiRejectReasonName(rj.Reason))
	}
	return p, nil
}

// login runs the login phase until the target moves to full feature phase,
// fails the login, or redirects it.
func (s *iscsiSession) login(r *probe.Result) (redirected bool, err error) {
	o := s.o
	sessionType := "Discovery"
	if o.Target != "" {
		sessionType = "Normal"
	}
	authMethod := "None"
	if o.chap != nil {
		authMethod = "CHAP,None"
	}
	keys := []iscsiKV{{"InitiatorName", o.InitiatorName}, {"SessionType", sessionType}}
	if o.Target != "" {
		keys = append(keys, iscsiKV{"TargetName", o.Target})
	}
	keys = append(keys, iscsiKV{"AuthMethod", authMethod})

	var (
		stage    uint8 = iscsiStageSecurity
		transit        = true
		chapDone bool
		text     []byte // response text carried over PDUs with C=1
		sent     []iscsiKV
	)
	itt := s.nextITT() // one ITT for the whole login (RFC 7143 §11.12.8)
	for n := 1; ; n++ {
		if n > iscsiMaxLoginPDUs {
			return false, Fail(probe.OutcomeProtocolError, "iscsi login: not complete after %d login requests", iscsiMaxLoginPDUs)
		}
		req := iscsiLoginReq{
			Transit: transit, CSG: stage, NSG: iscsiNextStage(stage),
			ISID: s.isid, ITT: itt, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN,
			Data: encodeISCSIText(keys),
		}
		if !transit {
			req.NSG = 0
		}
		sent = append(sent, keys...)
		if err := s.send("login", req.pdu()); err != nil {
			return false, err
		}
		p, err := s.receive("login", iscsiOpLoginResp, "Login Response")
		if err != nil {
			return false, err
		}
		resp, err := parseISCSILoginResp(p)
		if err != nil {
			s.broken = true
			return false, fmt.Errorf("iscsi login: %w", err)
		}
		if resp.ITT != itt {
			s.broken = true
			return false, Fail(probe.OutcomeProtocolError, "iscsi login: response for task tag 0x%08x, sent 0x%08x", resp.ITT, itt)
		}
		s.expStatSN = resp.StatSN + 1
		if len(text)+len(resp.Data) > iscsiMaxData {
			return false, Fail(probe.OutcomeProtocolError, "iscsi login: response text longer than %d bytes", iscsiMaxData)
		}
		text = append(text, resp.Data...)
		if resp.StatusClass != 0 {
			kvs, _ := decodeISCSIText(text)
			return s.loginStatus(r, resp, kvs)
		}
		if resp.Continue {
			if resp.Transit {
				return false, Fail(probe.OutcomeProtocolError, "iscsi login: response has both T and C set")
			}
			// The target's text goes on in the next response: ask for it.
			keys, transit = nil, false
			continue
		}
		kvs, err := decodeISCSIText(text)
		if err != nil {
			return false, fmt.Errorf("iscsi login: %w", err)
		}
		text = text[:0]
		s.noteLoginKeys(r, kvs)

		if resp.Transit {
			switch {
			case resp.NSG == iscsiStageFull:
				if resp.TSIH == 0 {
					return false, Fail(probe.OutcomeProtocolError, "iscsi login: final login response without a TSIH")
				}
				s.tsih = resp.TSIH
				r.SetDetail("tsih", strconv.Itoa(int(resp.TSIH)))
				r.SetDetail("status", iscsiStatusText(0))
				return false, nil
			case resp.NSG == iscsiStageOperational && stage == iscsiStageSecurity:
				stage, transit, sent = iscsiStageOperational, true, nil
				keys = []iscsiKV{
					{"HeaderDigest", "None"},
					{"DataDigest", "None"},
					{"MaxRecvDataSegmentLength", strconv.Itoa(iscsiMaxData)},
				}
				continue
			default:
				return false, Fail(probe.OutcomeProtocolError, "iscsi login: target moved from stage %d to stage %d", stage, resp.NSG)
			}
		}

		// T=0: the target stays in this stage and wants another request.
		if stage == iscsiStageOperational {
			keys, transit = iscsiAnswerKeys(kvs, sent), true
			continue
		}
		keys, transit, err = s.securityStep(kvs, &chapDone)
		if err != nil {
			return false, err
		}
	}
}

// iscsiNextStage is the stage a request asks to move to from stage.
func iscsiNextStage(stage uint8) uint8 {
	if stage == iscsiStageSecurity {
		return iscsiStageOperational
	}
	return iscsiStageFull
}

// securityStep answers a T=0 response of the security stage: the CHAP
// exchange of RFC 7143 §12.1.3, or a plain request to move on.
func (s *iscsiSession) securityStep(kvs []iscsiKV, chapDone *bool) (keys []iscsiKV, transit bool, err error) {
	if _, ok := iscsiTextValue(kvs, "CHAP_C"); ok {
		if s.o.chap == nil || *chapDone {
			return nil, false, Fail(probe.OutcomeProtocolError, "iscsi login: unexpected CHAP challenge")
		}
		keys, err := s.chapResponse(kvs)
		if err != nil {
			return nil, false, err
		}
		*chapDone = true
		return keys, true, nil
	}
	if am, ok := iscsiTextValue(kvs, "AuthMethod"); ok {
		switch am {
		case "CHAP":
			if s.o.chap == nil {
				return nil, false, Fail(probe.OutcomeProtocolError, "iscsi login: target chose AuthMethod=CHAP, which was not offered")
			}
			// Offer MD5, the one algorithm RFC 7143 requires.
			return []iscsiKV{{"CHAP_A", "5"}}, false, nil
		case "None":
		default:
			return nil, false, Fail(probe.OutcomeAuthError, "iscsi login: target answered AuthMethod=%s: it wants an authentication method that was not offered", iscsiTrunc(am, 40))
		}
	}
	return nil, true, nil
}

// chapResponse computes CHAP_N and CHAP_R for the target's CHAP_A, CHAP_I
// and CHAP_C: R = MD5(I || secret || C) (RFC 1994 §4.1).
func (s *iscsiSession) chapResponse(kvs []iscsiKV) ([]iscsiKV, error) {
	alg, _ := iscsiTextValue(kvs, "CHAP_A")
	switch alg {
	case "5":
	case "Reject", "NotUnderstood":
		return nil, Fail(probe.OutcomeAuthError, "iscsi login: target refuses CHAP with MD5 (CHAP_A=%s)", alg)
	default:
		return nil, Fail(probe.OutcomeProtocolError, "iscsi login: target chose CHAP_A=%q, only MD5 (5) was offered", iscsiTrunc(alg, 20))
	}
	idText, _ := iscsiTextValue(kvs, "CHAP_I")
	id, err := parseISCSINumber(idText)
	if err != nil || id > 255 {
		return nil, Fail(probe.OutcomeProtocolError, "iscsi login: bad CHAP_I %q", iscsiTrunc(idText, 20))
	}
	challengeText, _ := iscsiTextValue(kvs, "CHAP_C")
	challenge, err := decodeISCSIBinary(challengeText)
	if err != nil || len(challenge) == 0 {
		return nil, Fail(probe.OutcomeProtocolError, "iscsi login: bad CHAP_C %q", iscsiTrunc(challengeText, 20))
	}
	h := md5.New()
	h.Write([]byte{byte(id)})
	h.Write(s.o.chap.b)
	h.Write(challenge)
	return []iscsiKV{
		{"CHAP_N", s.o.CHAPUsername},
		{"CHAP_R", "0x" + hex.EncodeToString(h.Sum(nil))},
	}, nil
}

// parseISCSINumber parses a decimal or 0x hex constant (RFC 7143 §6.1).
func parseISCSINumber(s string) (uint64, error) {
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		return strconv.ParseUint(h, 16, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

// decodeISCSIBinary decodes a binary value: 0x hex or 0b base64 (RFC 7143
// §6.1).
func decodeISCSIBinary(s string) ([]byte, error) {
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		h := s[2:]
		if len(h)%2 == 1 {
			h = "0" + h
		}
		return hex.DecodeString(h)
	case len(s) > 2 && (s[:2] == "0b" || s[:2] == "0B"):
		return base64.StdEncoding.DecodeString(s[2:])
	}
	return nil, errors.New("not a binary value")
}

// iscsiAnswerKeys answers the operational keys a target proposed in a T=0
// response without being asked (RFC 7143 §6.2): digests get None, the
// known negotiated keys get the target's value back (always an acceptable
// answer to a single value), anything else NotUnderstood. Declarative keys
// and responses to what the check sent need no answer.
func iscsiAnswerKeys(kvs, sent []iscsiKV) []iscsiKV {
	var out []iscsiKV
	for _, kv := range kvs {
		if _, ok := iscsiTextValue(sent, kv.Key); ok {
			continue
		}
		switch kv.Value {
		case "NotUnderstood", "Irrelevant", "Reject":
			continue
		}
		switch kv.Key {
		case "MaxRecvDataSegmentLength", "TargetAlias", "TargetAddress", "TargetPortalGroupTag", "TargetName":
			continue
		case "HeaderDigest", "DataDigest":
			out = append(out, iscsiKV{kv.Key, "None"})
		case "MaxConnections", "InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength",
			"DefaultTime2Wait", "DefaultTime2Retain", "MaxOutstandingR2T", "DataPDUInOrder",
			"DataSequenceInOrder", "ErrorRecoveryLevel":
			v, _, _ := strings.Cut(kv.Value, ",")
			out = append(out, iscsiKV{kv.Key, v})
		default:
			out = append(out, iscsiKV{kv.Key, "NotUnderstood"})
		}
	}
	return out
}

// noteLoginKeys records what the target said about itself.
func (s *iscsiSession) noteLoginKeys(r *probe.Result, kvs []iscsiKV) {
	if v, ok := iscsiTextValue(kvs, "AuthMethod"); ok && (v == "None" || v == "CHAP") {
		r.SetDetail("auth_method", v)
	}
	if v, ok := iscsiTextValue(kvs, "TargetPortalGroupTag"); ok {
		r.SetDetail("target_portal_group", iscsiTrunc(v, 16))
	}
	if v, ok := iscsiTextValue(kvs, "TargetAlias"); ok {
		r.SetDetail("target_alias", iscsiTrunc(v, 64))
	}
}

func iscsiStatusText(status uint16) string {
	return fmt.Sprintf("0x%04x %s", status, iscsiStatusName(status))
}

// loginStatus turns a non-zero status class into the run's verdict.
func (s *iscsiSession) loginStatus(r *probe.Result, resp iscsiLoginResp, kvs []iscsiKV) (bool, error) {
	s.broken = true // the target ends the connection after a failed login
	status := resp.Status()
	name := iscsiStatusName(status)
	r.SetDetail("status", iscsiStatusText(status))
	if resp.StatusClass == 1 {
		addr, _ := iscsiTextValue(kvs, "TargetAddress")
		r.SetDetail("target_address", iscsiTrunc(addr, 128))
		r.SetDetail("redirect", name)
		return true, nil
	}
	err := iscsiStatusError(status)
	var oe *OutcomeError
	if errors.As(err, &oe) {
		reason := name
		if status == 0x0203 || status == 0x0204 {
			reason = "target not found"
		}
		r.SetDetail(probe.DetailReason, reason)
	}
	return false, err
}

// iscsiStatusError maps a failed login's status to an outcome:
//
//   - 0x0201 authentication and 0x0202 authorization failure: auth_error;
//   - 0x0203 not found and 0x0204 removed: auth_error, reason "target not
//     found". The portal answered as iSCSI, so the path and the protocol
//     are fine; what is wrong is the name the check asks for, or the
//     target's access list: tgt and LIO answer "not found" also to an
//     initiator their ACL does not admit, so the two cannot be told apart;
//   - any other class 2 (initiator error) or class 3 (target error):
//     protocol_error naming the status.
func iscsiStatusError(status uint16) error {
	name := iscsiStatusName(status)
	switch {
	case status == 0x0201 || status == 0x0202:
		return Fail(probe.OutcomeAuthError, "iscsi login refused: %s (status 0x%04x)", name, status)
	case status == 0x0203 || status == 0x0204:
		return Fail(probe.OutcomeAuthError, "iscsi login refused: target not found (status 0x%04x, %s)", status, name)
	case status>>8 == 2:
		return Fail(probe.OutcomeProtocolError, "iscsi login refused: %s (status 0x%04x)", name, status)
	case status>>8 == 3:
		return Fail(probe.OutcomeProtocolError, "iscsi login failed, target error: %s (status 0x%04x)", name, status)
	}
	return Fail(probe.OutcomeProtocolError, "iscsi login failed: unknown status 0x%04x", status)
}

// sendTargets asks the discovery session for all targets and records them.
func (s *iscsiSession) sendTargets(r *probe.Result) error {
	itt := s.nextITT()
	ttt := uint32(iscsiReservedTag)
	data := encodeISCSIText([]iscsiKV{{"SendTargets", "All"}})
	var text []byte
	for n := 1; ; n++ {
		if n > iscsiMaxTextPDUs {
			return Fail(probe.OutcomeProtocolError, "iscsi SendTargets: answer not complete after %d text requests", iscsiMaxTextPDUs)
		}
		req := iscsiTextReq{Final: true, ITT: itt, TTT: ttt, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN, Data: data}
		if err := s.send("SendTargets", req.pdu()); err != nil {
			return err
		}
		p, err := s.receive("SendTargets", iscsiOpTextResp, "Text Response")
		if err != nil {
			return err
		}
		resp, err := parseISCSITextResp(p)
		if err != nil {
			s.broken = true
			return fmt.Errorf("iscsi SendTargets: %w", err)
		}
		if resp.ITT != itt {
			s.broken = true
			return Fail(probe.OutcomeProtocolError, "iscsi SendTargets: response for task tag 0x%08x, sent 0x%08x", resp.ITT, itt)
		}
		s.expStatSN = resp.StatSN + 1
		if len(text)+len(resp.Data) > iscsiMaxData {
			return Fail(probe.OutcomeProtocolError, "iscsi SendTargets: answer longer than %d bytes", iscsiMaxData)
		}
		text = append(text, resp.Data...)
		if resp.Final && !resp.Continue {
			break
		}
		if resp.TTT == iscsiReservedTag {
			return Fail(probe.OutcomeProtocolError, "iscsi SendTargets: response is not final and gives no transfer tag to continue")
		}
		ttt, data = resp.TTT, nil
	}
	kvs, err := decodeISCSIText(text)
	if err != nil {
		return fmt.Errorf("iscsi SendTargets: %w", err)
	}
	s.targets = iscsiParseTargets(kvs)
	r.SetDetail("target_count", strconv.Itoa(len(s.targets)))
	r.SetDetail("targets", iscsiTargetsDetail(s.targets))
	if want := s.o.ExpectTarget; want != "" {
		for _, t := range s.targets {
			if strings.EqualFold(t.Name, want) {
				return nil
			}
		}
		r.SetDetail(probe.DetailReason, "target not advertised")
		return Fail(probe.OutcomeProtocolError, "iscsi SendTargets: target not advertised: %s is not among the %d targets listed", want, len(s.targets))
	}
	return nil
}

// iscsiParseTargets groups a SendTargets answer: each TargetName starts a
// target, the TargetAddress keys after it are its portals.
func iscsiParseTargets(kvs []iscsiKV) []iscsiAdvertised {
	var out []iscsiAdvertised
	for _, kv := range kvs {
		switch kv.Key {
		case "TargetName":
			out = append(out, iscsiAdvertised{Name: kv.Value})
		case "TargetAddress":
			if len(out) > 0 {
				last := &out[len(out)-1]
				last.Addresses = append(last.Addresses, kv.Value)
			}
		}
	}
	return out
}

// iscsiTargetsDetail renders targets for Details, bounded in count and
// length: "name (addr, addr) name (addr)".
func iscsiTargetsDetail(ts []iscsiAdvertised) string {
	var b strings.Builder
	for i, t := range ts {
		var item strings.Builder
		if i > 0 {
			item.WriteString(" ")
		}
		item.WriteString(iscsiTrunc(t.Name, iscsiMaxNameLen))
		if len(t.Addresses) > 0 {
			addrs := make([]string, len(t.Addresses))
			for j, a := range t.Addresses {
				addrs[j] = iscsiTrunc(a, 64)
			}
			item.WriteString(" (" + iscsiTrunc(strings.Join(addrs, ", "), 200) + ")")
		}
		if i >= iscsiDetailTargets || b.Len()+item.Len() > iscsiDetailTargetsLen {
			fmt.Fprintf(&b, " and %d more", len(ts)-i)
			break
		}
		b.WriteString(item.String())
	}
	return b.String()
}

// logout closes the session politely: a Logout Request, and its response
// read within iscsiLogoutWait. Failure here does not change the verdict.
func (s *iscsiSession) logout(ctx context.Context, r *probe.Result) {
	ctx, cancel := context.WithTimeout(ctx, iscsiLogoutWait)
	defer cancel()
	defer stopOnDone(ctx, s.conn)()
	itt := s.nextITT()
	req := iscsiLogoutReq{Reason: 0, ITT: itt, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN}
	if err := s.send("logout", req.pdu()); err != nil {
		r.SetDetail("logout", "not sent")
		return
	}
	p, err := s.receive("logout", iscsiOpLogoutResp, "Logout Response")
	if err != nil {
		r.SetDetail("logout", "no answer")
		return
	}
	resp, err := parseISCSILogoutResp(p)
	switch {
	case err != nil || resp.ITT != itt:
		r.SetDetail("logout", "unexpected answer")
	case resp.Response != 0:
		r.SetDetail("logout", fmt.Sprintf("response %d", resp.Response))
	default:
		r.SetDetail("logout", "ok")
	}
}
