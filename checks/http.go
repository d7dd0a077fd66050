package checks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"

	"github.com/flowprobe/flowprobe/probe"
)

const (
	// httpBodyLimit bounds how much of the body the http check reads.
	httpBodyLimit = 64 << 10
	// httpHeaderLimit bounds the response header.
	httpHeaderLimit = 64 << 10
	// httpMaxRedirects bounds the redirects the http check follows.
	httpMaxRedirects = 10
)

// A catalog http flow passes on any HTTP answer of the port itself
// (any_status, no redirects followed): a vendor's table names a port, not
// a URL that answers 2xx.
var httpKind = register(Spec[HTTPOptions]{
	Name:      "http",
	Transport: probe.TCP,
	Summary:   "HTTP or HTTPS request with expected status codes",
	Defaults:  newHTTPOptions,
	Values:    append([]Value{{ValueHTTPStatus, "HTTP status code of the response."}}, tlsValues...),
	Hints: []Hint{
		{App: "http", Options: map[string]any{"any_status": true, "no_follow_redirects": true}},
		// WinRM is WS-Management over HTTP (5985) or HTTPS (5986): its
		// endpoint answers any request, if only with 405 or 401.
		{App: "winrm", Options: map[string]any{"path": "/wsman", "any_status": true, "no_follow_redirects": true}},
	},
	Run: runHTTP,

	DefaultPort: 80,
})

// winrmHTTPSPort is the port of WS-Management over HTTPS (WinRM).
const winrmHTTPSPort = 5986

// ValueHTTPStatus is the status code of the response.
const ValueHTTPStatus = "http_status_code"

// HTTPOptions are the options of the http check.
type HTTPOptions struct {
	// Method is GET (default) or HEAD.
	Method string `yaml:"method"`
	// Path is the request path with an optional query (default /).
	Path string `yaml:"path"`
	// Scheme is http or https. Empty means https when the port is 443 or
	// 5986 (WS-Management over HTTPS) or a tls block is given, http
	// otherwise.
	Scheme string `yaml:"scheme"`
	// ValidStatusCodes lists the status codes that pass; empty means any
	// 2xx.
	ValidStatusCodes []int `yaml:"valid_status_codes"`
	// AnyStatus passes on any HTTP response: the path is open and an HTTP
	// server answers, whatever it thinks of the path. The catalog's http
	// flows use it, since a vendor's table names a port, not a URL.
	AnyStatus bool `yaml:"any_status"`
	// Headers are added to the request; "Host" sets the virtual host. A
	// value is a string, or a secret: {value_file: PATH} or
	// {value_env: NAME}, read when the check runs.
	Headers map[string]HeaderValue `yaml:"headers"`
	// NoFollowRedirects judges the first response; otherwise up to 10
	// redirects are followed.
	NoFollowRedirects bool `yaml:"no_follow_redirects"`
	// BodyRegexp, when set, must match the first 64 KiB of the body.
	BodyRegexp string `yaml:"body_regexp"`
	// TLS configures https.
	TLS *TLSOptions `yaml:"tls"`

	bodyRE *regexp.Regexp
}

func newHTTPOptions() *HTTPOptions { return &HTTPOptions{Method: http.MethodGet, Path: "/"} }

// Validate checks the options.
func (o *HTTPOptions) Validate() error {
	var errs []error
	switch o.Method {
	case "":
		o.Method = http.MethodGet
	case http.MethodGet, http.MethodHead:
	default:
		errs = append(errs, fmt.Errorf("method %q: want GET or HEAD", o.Method))
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if u, err := url.Parse("http://example.org" + o.Path); err != nil || o.Path[0] != '/' || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("path %q: want an absolute path with an optional query", o.Path))
	}
	switch o.Scheme {
	case "", "http", "https":
	default:
		errs = append(errs, fmt.Errorf("scheme %q: want http or https", o.Scheme))
	}
	if o.Scheme == "http" && o.TLS != nil {
		errs = append(errs, errors.New("tls: options need scheme https"))
	}
	if o.AnyStatus && len(o.ValidStatusCodes) > 0 {
		errs = append(errs, errors.New("any_status and valid_status_codes exclude each other"))
	}
	for _, c := range o.ValidStatusCodes {
		if c < 100 || c > 599 {
			errs = append(errs, fmt.Errorf("valid_status_codes: %d is not an HTTP status code", c))
		}
	}
	for k, v := range o.Headers {
		switch {
		case !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v.Value):
			errs = append(errs, fmt.Errorf("headers: %q is not a valid header", k))
		case !v.Secret.IsZero() && http.CanonicalHeaderKey(k) == "Host":
			errs = append(errs, errors.New("headers: Host names the virtual host, not a secret: give it as a string"))
		case !v.Secret.IsZero():
			v.Secret.option = "headers." + k + "." + v.Secret.option
			o.Headers[k] = v
		}
	}
	if o.BodyRegexp != "" {
		re, err := regexp.Compile(o.BodyRegexp)
		if err != nil {
			errs = append(errs, fmt.Errorf("body_regexp: %w", err))
		}
		if o.Method == http.MethodHead {
			errs = append(errs, errors.New("body_regexp: a HEAD response has no body"))
		}
		o.bodyRE = re
	}
	if o.TLS != nil {
		if err := o.TLS.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (o *HTTPOptions) scheme(port int) string {
	switch {
	case o.Scheme != "":
		return o.Scheme
	case port == 443 || port == winrmHTTPSPort || o.TLS != nil:
		return "https"
	}
	return "http"
}

func (o *HTTPOptions) statusValid(code int) bool {
	if o.AnyStatus {
		return true
	}
	if len(o.ValidStatusCodes) == 0 {
		return code >= 200 && code <= 299
	}
	for _, c := range o.ValidStatusCodes {
		if c == code {
			return true
		}
	}
	return false
}

// httpPhases sums the phases of every connection of one http check (one
// per redirect); the transport may time them on its own goroutines.
type httpPhases struct {
	mu        sync.Mutex
	d         [probe.NumPhases]time.Duration
	connected bool
}

func (p *httpPhases) add(ph probe.Phase, d time.Duration) {
	p.mu.Lock()
	p.d[ph] += d
	p.mu.Unlock()
}

// runHTTP sends one request (following redirects unless told not to)
// and judges the status code and, optionally, the body.
func runHTTP(ctx context.Context, t probe.Target, o *HTTPOptions, r *probe.Result) error {
	scheme := o.scheme(t.Port)
	host := t.Host
	if (scheme == "http" && t.Port != 80) || (scheme == "https" && t.Port != 443) {
		host = net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	} else if ip := net.ParseIP(t.Host); ip != nil && ip.To4() == nil {
		host = "[" + t.Host + "]"
	}
	target := scheme + "://" + host + o.Path
	req, err := o.request(ctx, target) // before connecting: an unreadable secret sends nothing
	if err != nil {
		return err
	}

	var ph httpPhases
	dialTCP := func(ctx context.Context, addr string) (net.Conn, string, error) {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, "", err
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return nil, "", fmt.Errorf("port %q: %w", p, err)
		}
		tt := t
		tt.Host = h
		var dr probe.Result
		peerStates.Store(&dr, peerStateOf(r)) // what the peer says counts for r
		conn, err := dialPort(ctx, &tt, "tcp", port, &dr)
		peerStates.Delete(&dr)
		ph.add(probe.PhaseResolve, dr.Phases[probe.PhaseResolve])
		ph.add(probe.PhaseConnect, dr.Phases[probe.PhaseConnect])
		ph.mu.Lock()
		ph.connected = ph.connected || dr.Connected
		ph.mu.Unlock()
		return conn, h, err
	}
	tr := &http.Transport{
		Proxy: nil, // a flow check goes straight to its target
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, _, err := dialTCP(ctx, addr)
			return c, err
		},
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			c, h, err := dialTCP(ctx, addr)
			if err != nil {
				return nil, err
			}
			cfg := (&TLSOptions{}).Config(h)
			if o.TLS != nil {
				cfg = o.TLS.Config(h)
			}
			cfg.NextProtos = []string{"h2", "http/1.1"}
			start := time.Now()
			tc := tls.Client(c, cfg)
			err = tc.HandshakeContext(ctx)
			ph.add(probe.PhaseTLS, time.Since(start))
			if err != nil {
				_ = c.Close()
				return nil, tlsHandshakeError(err)
			}
			return tc, nil
		},
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: httpHeaderLimit,
	}
	defer tr.CloseIdleConnections()
	redirects := 0
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if o.NoFollowRedirects {
				return http.ErrUseLastResponse
			}
			if len(via) > httpMaxRedirects {
				return Fail(probe.OutcomeProtocolError, "more than %d redirects", httpMaxRedirects)
			}
			if req.URL.Host != via[0].URL.Host {
				o.dropSecretHeaders(req.Header) // a secret goes to the configured host only
			}
			redirects = len(via)
			return nil
		},
	}

	start := time.Now()
	err = httpRequest(client, req, target, o, r)
	total := time.Since(start)
	ph.mu.Lock()
	r.Phases = ph.d
	r.Connected = ph.connected
	ph.mu.Unlock()
	r.Phases[probe.PhaseRequest] = max(0, total-r.Phases[probe.PhaseResolve]-r.Phases[probe.PhaseConnect]-r.Phases[probe.PhaseTLS])
	if redirects > 0 {
		r.SetDetail("redirects", strconv.Itoa(redirects))
	}
	if err != nil && classifyPath(err) == probe.OutcomeTLSError {
		recordTLSFailure(r, err)
	}
	return err
}

func httpRequest(client *http.Client, req *http.Request, target string, o *HTTPOptions, r *probe.Result) error {
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http %s %s: %w", o.Method, target, err)
	}
	defer resp.Body.Close()
	r.SetValue(ValueHTTPStatus, float64(resp.StatusCode))
	r.SetDetail("status", resp.Status)
	r.SetDetail("proto", resp.Proto)
	if resp.Request != nil && resp.Request.URL.String() != target {
		r.SetDetail("final_url", resp.Request.URL.String())
	}
	if resp.TLS != nil {
		recordTLSState(r, resp.TLS)
	}
	if !o.statusValid(resp.StatusCode) {
		r.SetDetail(probe.DetailReason, fmt.Sprintf("status %d is not a valid status code", resp.StatusCode))
		return Fail(probe.OutcomeProtocolError, "http %s %s: status %s", o.Method, target, resp.Status)
	}
	if o.bodyRE == nil {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, httpBodyLimit))
	if err != nil {
		return fmt.Errorf("http %s %s: read body: %w", o.Method, target, err)
	}
	if !o.bodyRE.Match(body) {
		r.SetDetail(probe.DetailReason, "body does not match body_regexp")
		return Fail(probe.OutcomeProtocolError, "http %s %s: body does not match %q", o.Method, target, o.BodyRegexp)
	}
	return nil
}

// request builds the check's request to target, with the configured
// headers; secret header values are read here.
func (o *HTTPOptions) request(ctx context.Context, target string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, o.Method, target, nil)
	if err != nil {
		return nil, fmt.Errorf("http request: %w", err)
	}
	req.Header.Set("User-Agent", "flowprobe")
	for k, h := range o.Headers {
		v := h.Value
		if !h.Secret.IsZero() {
			if v, err = h.Secret.Reveal(); err != nil {
				return nil, err
			}
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, secretError{fmt.Errorf("%s: %s holds no valid header value", h.Secret.option, h.Secret.source())}
			}
		}
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

// dropSecretHeaders removes the headers whose values are secrets.
func (o *HTTPOptions) dropSecretHeaders(h http.Header) {
	for k, v := range o.Headers {
		if !v.Secret.IsZero() {
			h.Del(k)
		}
	}
}

func (o *HTTPOptions) secrets() []Secret {
	var out []Secret
	for _, k := range slices.Sorted(maps.Keys(o.Headers)) {
		if s := o.Headers[k].Secret; !s.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// HeaderValue is the value of one header of the http check: a string
// written in the config, or a Secret given as {value_file: PATH} or
// {value_env: NAME} and read when the check runs.
type HeaderValue struct {
	Value  string
	Secret Secret
}

// UnmarshalYAML reads a string or a {value_file | value_env} mapping.
func (h *HeaderValue) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return n.Decode(&h.Value)
	}
	var file, env string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		var dst *string
		switch k {
		case "value_file":
			dst = &file
		case "value_env":
			dst = &env
		default:
			return fmt.Errorf("header value: unknown key %q (known: value_file, value_env)", k)
		}
		if err := v.Decode(dst); err != nil {
			return fmt.Errorf("header value: %s: %w", k, err)
		}
	}
	s, err := newSecret("value", file, env)
	if err == nil && s.IsZero() {
		err = requireSecret("value")
	}
	if err != nil {
		return fmt.Errorf("header value: %w", err)
	}
	h.Secret = s
	return nil
}

// MarshalYAML writes the string, or the secret's source.
func (h HeaderValue) MarshalYAML() (any, error) {
	switch {
	case h.Secret.file != "":
		return map[string]string{"value_file": h.Secret.file}, nil
	case h.Secret.env != "":
		return map[string]string{"value_env": h.Secret.env}, nil
	}
	return h.Value, nil
}

// String is the value, or the secret's source.
func (h HeaderValue) String() string {
	if !h.Secret.IsZero() {
		return h.Secret.String()
	}
	return h.Value
}
