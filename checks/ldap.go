package checks

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/flowprobe/flowprobe/probe"
)

// LDAP modes.
const (
	ldapPlain    = "plain"
	ldapLDAPS    = "ldaps"
	ldapStartTLS = "starttls"
)

// ldapReadLimit bounds what one ldap check reads from the server, so a
// hostile or runaway server cannot make it buffer without end.
const ldapReadLimit = 1 << 20

// ldapMaxSizeLimit bounds the size_limit option.
const ldapMaxSizeLimit = 1000

var ldapKind = register(Spec[LDAPOptions]{
	Name:      "ldap",
	Transport: probe.TCP,
	Summary:   "LDAP, LDAPS or StartTLS, anonymous or simple bind, optional search",
	Defaults:  newLDAPOptions,
	Values:    tlsValues,
	Hints:     []Hint{{App: "ldap"}, {App: "ldaps", Options: map[string]any{"mode": "ldaps"}}},
	Run:       runLDAP,

	DefaultPort: 389,
})

// LDAPOptions are the options of the ldap check.
type LDAPOptions struct {
	// Mode is plain, ldaps or starttls. Empty means ldaps on port 636 and
	// plain elsewhere.
	Mode string `yaml:"mode"`
	// BindDN with a password from PasswordFile or PasswordEnv makes a simple
	// bind; without BindDN the bind is anonymous.
	BindDN       string `yaml:"bind_dn"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// RootDSE reads the server's root DSE after the bind.
	RootDSE bool `yaml:"rootdse"`
	// BaseDN, when set, runs a search after the bind.
	BaseDN string `yaml:"base_dn"`
	// Filter of the search; default (objectClass=*).
	Filter string `yaml:"filter"`
	// Scope of the search: base, one or sub (default).
	Scope string `yaml:"scope"`
	// SizeLimit is the most entries the search may return (default 10).
	SizeLimit int `yaml:"size_limit"`
	// TLS configures ldaps and starttls.
	TLS *TLSOptions `yaml:"tls"`
	// AllowPlaintextBind allows a simple bind (bind_dn) over plain LDAP,
	// which sends the password in clear text. Without it such options are
	// refused when the config is loaded.
	AllowPlaintextBind bool `yaml:"allow_plaintext_bind"`

	password Secret // named by Validate, read when the check runs
	scope    int
}

func newLDAPOptions() *LDAPOptions {
	return &LDAPOptions{Filter: "(objectClass=*)", Scope: "sub", SizeLimit: 10}
}

var ldapScopes = map[string]int{
	"base": ldap.ScopeBaseObject, "one": ldap.ScopeSingleLevel, "sub": ldap.ScopeWholeSubtree,
}

// Validate checks the options and names the bind password's source; the
// password itself is read when the check runs.
func (o *LDAPOptions) Validate() error {
	var errs []error
	switch o.Mode {
	case "", ldapPlain, ldapLDAPS, ldapStartTLS:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want plain, ldaps or starttls", o.Mode))
	}
	if o.Mode == ldapPlain && o.TLS != nil {
		errs = append(errs, errors.New("tls: options need mode ldaps or starttls"))
	}
	if o.BindDN == "" {
		if o.PasswordFile != "" || o.PasswordEnv != "" {
			errs = append(errs, errors.New("password_file/password_env need bind_dn"))
		}
	} else {
		pw, err := newSecret("password", o.PasswordFile, o.PasswordEnv)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("bind_dn %s: %w", o.BindDN, err))
		case pw.IsZero():
			errs = append(errs, fmt.Errorf("bind_dn %s: %w (or omit bind_dn for an anonymous bind)", o.BindDN, requireSecret("password")))
		}
		o.password = pw
		if (o.Mode == "" || o.Mode == ldapPlain) && !o.AllowPlaintextBind {
			errs = append(errs, errors.New("bind_dn over plain LDAP sends the password in clear text: set mode: ldaps or starttls "+
				"(options are read before the port is known, so an empty mode counts as plain even for port 636), or allow_plaintext_bind: true"))
		}
	}
	if o.RootDSE && o.BaseDN != "" {
		errs = append(errs, errors.New("rootdse and base_dn: choose one"))
	}
	if o.Filter == "" {
		o.Filter = "(objectClass=*)"
	}
	if _, err := ldap.CompileFilter(o.Filter); err != nil {
		errs = append(errs, fmt.Errorf("filter %q: %w", o.Filter, err))
	}
	if o.Scope == "" {
		o.Scope = "sub"
	}
	scope, ok := ldapScopes[o.Scope]
	if !ok {
		errs = append(errs, fmt.Errorf("scope %q: want base, one or sub", o.Scope))
	}
	o.scope = scope
	if o.SizeLimit < 1 || o.SizeLimit > ldapMaxSizeLimit {
		errs = append(errs, fmt.Errorf("size_limit %d: want 1 to %d", o.SizeLimit, ldapMaxSizeLimit))
	}
	if o.TLS != nil {
		if err := o.TLS.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (o *LDAPOptions) secrets() []Secret {
	if o.password.IsZero() {
		return nil
	}
	return []Secret{o.password}
}

// mode is the effective mode against port.
func (o *LDAPOptions) mode(port int) string {
	if o.Mode == "" {
		if port == 636 {
			return ldapLDAPS
		}
		return ldapPlain
	}
	return o.Mode
}

func (o *LDAPOptions) tlsConfig(host string) *tls.Config {
	if o.TLS == nil {
		return (&TLSOptions{}).Config(host)
	}
	return o.TLS.Config(host)
}

// runLDAP connects (plain, LDAPS or StartTLS), binds anonymously or with
// a DN and password, and optionally reads the root DSE or searches.
func runLDAP(ctx context.Context, t probe.Target, o *LDAPOptions, r *probe.Result) error {
	mode := o.mode(t.Port)
	r.SetDetail("mode", mode)
	var password string
	if o.BindDN != "" {
		pw, err := o.password.Reveal() // before connecting: an unreadable password sends nothing
		if err != nil {
			return err
		}
		password = pw
	}

	raw, done, err := connect(ctx, &t, "tcp", 0, r)
	if err != nil {
		return err
	}
	defer done()
	rc := &ldapConn{Conn: raw, left: ldapReadLimit}

	var conn net.Conn = rc
	if mode != ldapPlain {
		start := time.Now()
		tc, err := ldapTLS(ctx, rc, mode, o.tlsConfig(t.Host))
		r.Phases[probe.PhaseTLS] = time.Since(start)
		if err != nil {
			return ldapNote(r, err)
		}
		cs := tc.ConnectionState()
		recordTLSState(r, &cs)
		conn = tc
	}

	start := time.Now()
	err = ldapSession(ctx, conn, mode != ldapPlain, o, password, rc, r)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	return ldapNote(r, err)
}

// ldapNote records the reason of a failure and returns err.
func ldapNote(r *probe.Result, err error) error {
	if reason := ldapReason(err); reason != "" {
		r.SetDetail(probe.DetailReason, reason)
	} else if err != nil && classifyPath(err) == probe.OutcomeTLSError {
		recordTLSFailure(r, err)
	}
	return err
}

// ldapTLS runs the TLS handshake of mode on c: at once for ldaps, after the
// StartTLS extended operation for starttls.
//
// StartTLS is sent here rather than with ldap.Conn.StartTLS because the
// library formats the handshake error as text, which would lose the
// certificate error Classify needs, and its handshake has no context.
func ldapTLS(ctx context.Context, c *ldapConn, mode string, cfg *tls.Config) (*tls.Conn, error) {
	if mode == ldapStartTLS {
		if err := ldapSendStartTLS(c); err != nil {
			return nil, err
		}
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, tlsHandshakeError(err)
	}
	return tc, nil
}

// ldapStartTLSOID names the StartTLS extended operation (RFC 4511 §4.14).
const ldapStartTLSOID = "1.3.6.1.4.1.1466.20037"

// ldapSendStartTLS sends the StartTLS extended request as message 1 and
// reads the server's extended response.
func ldapSendStartTLS(c *ldapConn) error {
	req := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), "MessageID"))
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, ldapStartTLSOID, "TLS Extended Command"))
	req.AppendChild(op)
	if _, err := c.Write(req.Bytes()); err != nil {
		return fmt.Errorf("StartTLS request: %w", err)
	}
	// Every LDAP message is a SEQUENCE: anything else is not LDAP, and is
	// told at once rather than after waiting for a length it made up.
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return ldapStartTLSReadError(c, err)
	}
	if first[0] != 0x30 {
		return Fail(probe.OutcomeProtocolError, "StartTLS response: not LDAP (first byte %#02x)", first[0])
	}
	resp, err := ldapReadPacket(io.MultiReader(bytes.NewReader(first[:]), c)) // bounded: ldapread.go
	if err != nil {
		return ldapStartTLSReadError(c, err)
	}
	if len(resp.Children) < 2 || resp.Children[1].ClassType != ber.ClassApplication ||
		resp.Children[1].Tag != ldap.ApplicationExtendedResponse {
		return Fail(probe.OutcomeProtocolError, "StartTLS response: not an LDAP extended response")
	}
	if id, ok := resp.Children[0].Value.(int64); !ok || id != 1 {
		return Fail(probe.OutcomeProtocolError, "StartTLS response: message id %v, want 1", resp.Children[0].Value)
	}
	if err := ldap.GetLDAPError(resp); err != nil {
		return ldapResultError("StartTLS", err)
	}
	return nil
}

func ldapStartTLSReadError(c *ldapConn, err error) error {
	_, spoke := c.state()
	switch {
	case isEOF(err):
		return Fail(probe.OutcomeProtocolError, "StartTLS response: the server closed the connection: %w", err)
	case isTimeout(err) && spoke:
		return Fail(probe.OutcomeProtocolError, "StartTLS response: an incomplete LDAP message: %w", err)
	case classifyPath(err) == probe.OutcomeProtocolError:
		return Fail(probe.OutcomeProtocolError, "StartTLS response: not LDAP: %w", err)
	}
	return fmt.Errorf("StartTLS response: %w", err)
}

// ldapSession binds and runs the optional read on conn, an established
// (and, with isTLS, encrypted) connection. rc is the raw connection below,
// which knows why a read failed. password is the bind password of
// o.BindDN.
func ldapSession(ctx context.Context, conn net.Conn, isTLS bool, o *LDAPOptions, password string, rc *ldapConn, r *probe.Result) error {
	l := ldap.NewConn(guardLDAP(conn, rc), isTLS) // one bounded message at a time: ldapread.go
	l.Start()
	defer l.Close()
	if dl, ok := ctx.Deadline(); ok {
		// The ctx deadline on the conn ends a request first; this is the
		// library's own bound, in case it waits without reading.
		l.SetTimeout(time.Until(dl) + time.Second)
	}
	// Over plain LDAP, a server that sent bytes but no LDAP message before
	// the deadline is not an LDAP server. Over TLS that cannot be told
	// from a slow one (TLS 1.3 sends tickets after the handshake).
	answered := isTLS
	fail := func(op string, err error) error { return ldapError(ctx, op, err, rc, answered) }

	if o.BindDN == "" {
		if err := l.UnauthenticatedBind(""); err != nil {
			return fail("anonymous bind", err)
		}
		answered = true
		r.SetDetail("bind", "anonymous")
	} else {
		if err := l.Bind(o.BindDN, password); err != nil {
			return fail("bind as "+o.BindDN, err)
		}
		answered = true
		r.SetDetail("bind", o.BindDN)
	}

	switch {
	case o.RootDSE:
		attrs := []string{"namingContexts", "supportedLDAPVersion", "vendorName", "vendorVersion"}
		req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
			ldapTimeLimit(ctx), false, "(objectClass=*)", attrs, nil)
		req.EnforceSizeLimit = true
		res, err := l.Search(req)
		if err != nil && !ldapSizeLimited(err) {
			return fail("read root DSE", err)
		}
		if len(res.Entries) == 0 {
			return Fail(probe.OutcomeProtocolError, "read root DSE: no entry returned")
		}
		e := res.Entries[0]
		r.SetDetail("naming_contexts", truncateDetail(strings.Join(e.GetAttributeValues("namingContexts"), " "), 256))
		r.SetDetail("ldap_versions", strings.Join(e.GetAttributeValues("supportedLDAPVersion"), " "))
		if v := strings.TrimSpace(e.GetAttributeValue("vendorName") + " " + e.GetAttributeValue("vendorVersion")); v != "" {
			r.SetDetail("vendor", truncateDetail(v, 128))
		}
	case o.BaseDN != "":
		req := ldap.NewSearchRequest(o.BaseDN, o.scope, ldap.NeverDerefAliases, o.SizeLimit,
			ldapTimeLimit(ctx), false, o.Filter, []string{"1.1"}, nil)
		req.EnforceSizeLimit = true
		res, err := l.Search(req)
		if err != nil && !ldapSizeLimited(err) {
			return fail("search "+o.BaseDN, err)
		}
		r.SetDetail("entries", strconv.Itoa(len(res.Entries)))
	}
	_ = l.Unbind()
	return nil
}

// ldapTimeLimit is the server-side time limit of a search, in whole
// seconds, from ctx's deadline (0, no limit, without one).
func ldapTimeLimit(ctx context.Context) int {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(1, int(time.Until(dl)/time.Second))
}

func ldapSizeLimited(err error) bool {
	return errors.Is(err, ldap.ErrSizeLimitExceeded) ||
		ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded)
}

// ldapError turns an error of the ldap library into one Classify maps
// right. The library reports network failures as result code 200 or as a
// plain error, the cause flattened to text; the raw conn below remembers
// the cause.
// answered tells whether the server has sent a valid LDAP message.
func ldapError(ctx context.Context, op string, err error, rc *ldapConn, answered bool) error {
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode != ldap.ErrorNetwork {
		return ldapResultError(op, err)
	}
	cause, spoke := rc.state()
	timedOut := ctxExpired(ctx) || (cause != nil && isTimeout(cause))
	switch {
	case cause != nil && isEOF(cause):
		return Fail(probe.OutcomeProtocolError, "%s: the server closed the connection: %w", op, cause)
	case timedOut && spoke && !answered:
		return Fail(probe.OutcomeProtocolError, "%s: the server's reply is not LDAP: %w", op, err)
	case timedOut && cause == nil:
		return fmt.Errorf("%s: %w: %w", op, err, context.DeadlineExceeded)
	case cause != nil:
		return fmt.Errorf("%s: %w", op, cause)
	}
	return Fail(probe.OutcomeProtocolError, "%s: %w", op, err)
}

// ctxExpired reports a done ctx or a passed deadline (which a timer may not
// have reported yet).
func ctxExpired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// ldapResultError pins the outcome of an LDAP result code.
func ldapResultError(op string, err error) error {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch le.ResultCode {
	case ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication,
		ldap.LDAPResultUnwillingToPerform:
		return Fail(probe.OutcomeAuthError, "%s: %w", op, err)
	case ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultStrongAuthRequired:
		return Fail(probe.OutcomeTLSError, "%s: server requires TLS: %w", op, err)
	}
	return Fail(probe.OutcomeProtocolError, "%s: %w", op, err)
}

// ldapReason is the short reason of a failed LDAP operation.
func ldapReason(err error) string {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return ""
	}
	switch le.ResultCode {
	case ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultStrongAuthRequired:
		return "server requires TLS"
	case ldap.ErrorNetwork:
		return ""
	}
	if le.ResultCode >= ldap.ErrorNetwork {
		return ""
	}
	return fmt.Sprintf("result code %d (%s)", le.ResultCode, ldap.LDAPResultCodeMap[le.ResultCode])
}

// ldapConn is the raw connection under an LDAP session. It bounds what is
// read and remembers the first read or write error and whether the server
// sent anything.
type ldapConn struct {
	net.Conn

	mu    sync.Mutex
	left  int
	read  int
	cause error
}

var errLDAPTooMuch = errors.New("the server sent more than the check reads")

func (c *ldapConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	left := c.left
	c.mu.Unlock()
	if left <= 0 {
		c.note(0, Fail(probe.OutcomeProtocolError, "read: %w (%d bytes)", errLDAPTooMuch, ldapReadLimit))
		return 0, errLDAPTooMuch
	}
	if len(b) > left {
		b = b[:left]
	}
	n, err := c.Conn.Read(b)
	c.note(n, err)
	return n, err
}

func (c *ldapConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.note(0, err)
	return n, err
}

func (c *ldapConn) note(n int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.left -= n
	c.read += n
	if err != nil && c.cause == nil && !errors.Is(err, net.ErrClosed) {
		c.cause = err
	}
}

// state returns the first I/O error and whether the server sent anything.
func (c *ldapConn) state() (error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause, c.read > 0
}

// truncateDetail shortens s to at most n bytes, marking the cut.
func truncateDetail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
