package checks

import (
	"bufio"
	"cmp"
	"context"
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

var iscsiKind = register(Spec[ISCSIOptions]{
	Name:      "iscsi",
	Transport: probe.TCP,
	Summary:   "iSCSI login (discovery or a named target), optional CHAP and SendTargets",
	Defaults:  newISCSIOptions,
	Hints:     []Hint{{App: "iscsi"}},
	Run:       runISCSI,

	DefaultPort: 3260,
})

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

	// chap names the CHAP secret's source (set by Validate); the secret is
	// read when the check runs.
	chap Secret
}

func (o *ISCSIOptions) secrets() []Secret {
	if o.chap.IsZero() {
		return nil
	}
	return []Secret{o.chap}
}

// revealCHAP reads the CHAP secret: nil without CHAP.
func (o *ISCSIOptions) revealCHAP() ([]byte, error) {
	if o.CHAPUsername == "" {
		return nil, nil
	}
	s, err := o.chap.Reveal()
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

func newISCSIOptions() *ISCSIOptions {
	return &ISCSIOptions{InitiatorName: DefaultISCSIInitiatorName}
}

// Validate checks the names and names the CHAP secret's source.
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
		s, err := newSecret("chap_secret", o.CHAPSecretFile, o.CHAPSecretEnv)
		switch {
		case err != nil:
			errs = append(errs, err)
		case s.IsZero():
			errs = append(errs, requireSecret("chap_secret"))
		}
		o.chap = s
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

// iscsiReady completes options built in code rather than decoded: it
// names the CHAP secret's source and fills in the initiator name, into a
// copy (runs may share o).
func iscsiReady(o *ISCSIOptions) (*ISCSIOptions, error) {
	if o.CHAPUsername != "" && o.chap.IsZero() {
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
}

// runISCSI logs in to the target's iSCSI portal: a discovery session, or
// a normal session to options.target, with CHAP when configured; optionally
// asks for SendTargets; then logs out. The target's login status decides
// the outcome (see iscsiStatusError).
func runISCSI(ctx context.Context, t probe.Target, o *ISCSIOptions, r *probe.Result) error {
	o, err := iscsiReady(o)
	if err != nil {
		return err
	}
	chap, err := o.revealCHAP() // before connecting: an unreadable secret sends nothing
	if err != nil {
		return err
	}
	conn, done, err := connect(ctx, &t, "tcp", cmp.Or(t.Port, iscsiDefaultPort), r)
	if err != nil {
		return err
	}
	defer done()

	s := newISCSISession(conn, o, chap)
	start := time.Now()
	err = s.run(ctx, r)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	return err
}

// iscsiSession is one connection's worth of the iSCSI conversation.
type iscsiSession struct {
	conn      net.Conn
	rd        *bufio.Reader
	o         *ISCSIOptions
	chap      []byte // the CHAP secret; nil without CHAP
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

func newISCSISession(conn net.Conn, o *ISCSIOptions, chap []byte) *iscsiSession {
	s := &iscsiSession{conn: conn, rd: bufio.NewReaderSize(conn, 4096), o: o, chap: chap, cmdSN: 1}
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
