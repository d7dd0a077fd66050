package checks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/probe"
)

const secretTestValue = "Zq7-unit-secret-9Kx"

// Every way of printing a Secret, alone or inside options, shows its
// source and never its value.
func TestSecretRedactsItselfEverywhere(t *testing.T) {
	file := appFile(t, "pw", secretTestValue+"\n")
	s := SecretFile("password_file", file)
	if v, err := s.Reveal(); err != nil || v != secretTestValue {
		t.Fatalf("Reveal: %q, %v", v, err)
	}
	o, err := Decode("ldap", map[string]any{"bind_dn": "cn=x", "password_file": file, "mode": "ldaps"})
	if err != nil {
		t.Fatal(err)
	}
	type wrapped struct {
		Password Secret `json:"password" yaml:"password"`
	}
	var shown []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3s"} {
		shown = append(shown, fmt.Sprintf(verb, s), fmt.Sprintf(verb, wrapped{s}), fmt.Sprintf(verb, o))
	}
	j, _ := json.Marshal(wrapped{s})
	y, _ := yaml.Marshal(wrapped{s})
	txt, _ := s.MarshalText()
	shown = append(shown, string(j), string(y), string(txt))
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(h(&b)).Info("run", "secret", s, "options", o, "wrapped", wrapped{s})
		shown = append(shown, b.String())
	}
	for _, out := range shown {
		if strings.Contains(out, secretTestValue) || strings.Contains(out, fmt.Sprintf("%x", secretTestValue)) {
			t.Errorf("the value shows in %q", out)
		}
	}
	var back struct{ Password string }
	_ = json.Unmarshal(j, &back)
	if want := "<secret from file " + file + ">"; s.String() != want || back.Password != want || !strings.Contains(string(y), want) {
		t.Errorf("String %q, JSON %s, YAML %s; want the source %q", s, j, y, want)
	}
}

// Audit, what `flowprobe validate` runs: an unusable secret is an error,
// a file open to others or a variable not set here a warning.
func TestSecretAudit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("FLOWPROBE_TEST_SECRET_SET", secretTestValue)
	for _, tc := range []struct {
		name       string
		s          Secret
		warn, fail string
	}{
		{"private file", SecretFile("password_file", write("private", secretTestValue, 0o600)), "", ""},
		{"group-readable file", SecretFile("password_file", write("group", secretTestValue, 0o640)), "open to its group or others (mode 0640)", ""},
		{"world-readable file", SecretFile("password_file", write("world", secretTestValue, 0o644)), "(mode 0644)", ""},
		{"missing file", SecretFile("password_file", filepath.Join(dir, "missing")), "", "password_file: open " + dir + "/missing: no such file or directory"},
		{"empty file", SecretFile("password_file", write("empty", "\n", 0o600)), "", "is empty"},
		{"short file", SecretFile("auth_password_file", write("short", "short\n", 0o600)).atLeast(snmpMinPassword), "", "shorter than 8 characters"},
		{"set variable", SecretEnv("password_env", "FLOWPROBE_TEST_SECRET_SET"), "", ""},
		{"unset variable", SecretEnv("password_env", "FLOWPROBE_TEST_SECRET_UNSET"), "environment variable FLOWPROBE_TEST_SECRET_UNSET is not set here", ""},
	} {
		warn, err := tc.s.Audit()
		if tc.warn == "" && warn != "" || !strings.Contains(warn, tc.warn) {
			t.Errorf("%s: warning %q, want %q", tc.name, warn, tc.warn)
		}
		switch {
		case tc.fail == "" && err != nil:
			t.Errorf("%s: error %v", tc.name, err)
		case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.fail)
		}
		if strings.Contains(warn, secretTestValue) || err != nil && strings.Contains(err.Error(), secretTestValue) {
			t.Errorf("%s: the audit shows the value", tc.name)
		}
	}
}

// Decoding options never reads a secret; running the check does, before
// it sends anything: a secret that cannot be read is local_error and the
// peer sees no connection.
func TestSecretsReadWhenTheCheckRuns(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	var contacted atomic.Int32
	tcp := appTCPPeer(t, func(c net.Conn) { contacted.Add(1); appSilent(c) })
	udp := appUDPPeer(t, func([]byte) [][]byte { contacted.Add(1); return nil })
	for _, tc := range []struct {
		kind string
		port int
		raw  map[string]any
	}{
		{"ldap", tcp, map[string]any{"mode": "ldaps", "bind_dn": "cn=x", "password_file": missing}},
		{"ldap", tcp, map[string]any{"mode": "ldaps", "bind_dn": "cn=x", "password_env": "FLOWPROBE_TEST_SECRET_UNSET"}},
		{"snmp", udp, map[string]any{"community_file": missing}},
		{"snmp", udp, map[string]any{"version": "3", "username": "u", "auth_password_file": missing}},
		{"snmp", udp, map[string]any{"version": "3", "username": "u", "auth_password_file": appFile(t, "short", "short\n")}},
		{"iscsi", tcp, map[string]any{"chap_username": "alice", "chap_secret_file": missing}},
		{"iscsi", tcp, map[string]any{"chap_username": "alice", "chap_secret_file": appFile(t, "empty", "")}},
		{"http", tcp, map[string]any{"headers": map[string]any{"Authorization": map[string]any{"value_file": missing}}}},
		{"http", tcp, map[string]any{"headers": map[string]any{"X-Key": map[string]any{"value_env": "FLOWPROBE_TEST_SECRET_UNSET"}}}},
		{"http", tcp, map[string]any{"headers": map[string]any{"X-Key": map[string]any{"value_file": appFile(t, "crlf", "a\r\nb")}}}},
	} {
		r := appRun(t, tc.kind, tc.port, tc.raw) // Decode succeeds: it reads nothing
		if r.Outcome != probe.OutcomeLocalError || r.Details[probe.DetailReason] != probe.ReasonSecretUnreadable || r.Connected {
			t.Errorf("%s %v: outcome %s, reason %q, connected %v (%v); want local_error, %q",
				tc.kind, tc.raw, r.Outcome, r.Details[probe.DetailReason], r.Connected, r.Err, probe.ReasonSecretUnreadable)
		}
	}
	if n := contacted.Load(); n != 0 {
		t.Errorf("the peers were contacted %d times", n)
	}
}

// The http check sends a secret header to the configured host and drops it
// on a redirect to another host.
func TestHTTPSecretHeader(t *testing.T) {
	t.Setenv("FLOWPROBE_TEST_HTTP_KEY", "key-"+secretTestValue)
	got := make(chan [2]string, 2)
	other := appHTTPServerFunc(t, func(h map[string]string) { got <- [2]string{"other", h["X-Api-Key"] + "|" + h["Authorization"]} }, "")
	first := appHTTPServerFunc(t, func(h map[string]string) { got <- [2]string{"first", h["X-Api-Key"] + "|" + h["Authorization"]} },
		fmt.Sprintf("http://localhost:%d/", other))
	r := appRun(t, "http", first, map[string]any{"headers": map[string]any{
		"Authorization": map[string]any{"value_file": appFile(t, "auth", "Bearer "+secretTestValue+"\n")},
		"X-Api-Key":     map[string]any{"value_env": "FLOWPROBE_TEST_HTTP_KEY"},
	}})
	appWant(t, r, probe.OutcomeOK)
	if a := <-got; a != [2]string{"first", "key-" + secretTestValue + "|Bearer " + secretTestValue} {
		t.Errorf("the configured host got %q", a)
	}
	if a := <-got; a != [2]string{"other", "|"} {
		t.Errorf("the host redirected to got %q, want no secret header", a)
	}
	if strings.Contains(fmt.Sprint(r.Details, r.Err), secretTestValue) {
		t.Errorf("the result shows a secret: %v %v", r.Details, r.Err)
	}

	bad := map[string]map[string]any{
		"unknown key":   {"headers": map[string]any{"X-Key": map[string]any{"file": "/x"}}},
		"file and env":  {"headers": map[string]any{"X-Key": map[string]any{"value_file": "/x", "value_env": "X"}}},
		"empty mapping": {"headers": map[string]any{"X-Key": map[string]any{}}},
		"secret host":   {"headers": map[string]any{"Host": map[string]any{"value_env": "X"}}},
	}
	for name, raw := range bad {
		if _, err := Decode("http", raw); err == nil {
			t.Errorf("%s: %v was accepted", name, raw)
		}
	}
}

// appHTTPServerFunc serves HTTP on loopback; each request's headers go to
// seen, and the answer is a redirect to location when it is set, 200 else.
func appHTTPServerFunc(t *testing.T, seen func(map[string]string), location string) int {
	t.Helper()
	return appHTTPServer(t, func(w http.ResponseWriter, req *http.Request) {
		h := map[string]string{}
		for k := range req.Header {
			h[k] = req.Header.Get(k)
		}
		seen(h)
		if location != "" {
			http.Redirect(w, req, location, http.StatusFound)
		}
	})
}
