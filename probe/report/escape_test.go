package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"connection refused", "connection refused"},
		{"SSH-2.0-OpenSSH_9.2p1 Debian-2", "SSH-2.0-OpenSSH_9.2p1 Debian-2"},
		{"a\tb → c — ポート", "a\tb → c — ポート"},
		{`C:\path\file`, `C:\path\file`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;title\x07", `\x1b]0;title\x07`},
		{"line\r\nnext\n", `line\r\nnext\n`},
		{"nul\x00del\x7f", `nul\x00del\x7f`},
		{"csi\u009b31m nel\u0085", `csi\u009b31m nel\u0085`},
		{"raw\x9b31m \xff", `raw\x9b31m \xff`},
	} {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMarkdownCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text — 7365", "plain text — 7365"},
		{"a|b", `a\|b`},
		{`a\|b`, `a\\\|b`},
		{"<node> & <script>", "&lt;node&gt; & &lt;script&gt;"},
		{"one\ntwo\r\nthree\r", "one two three"},
	} {
		if got := mdCell(tc.in); got != tc.want {
			t.Errorf("mdCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// hostile is a check run whose peer put terminal escape sequences into the
// reason, a detail and the error text.
func hostile() (*catalog, *planResult, []probe.Result) {
	cat := &catalog{}
	plan := &planResult{Targets: []probe.Target{{
		ID: "evil", Product: "p", Flow: "web", Source: "node", Destination: "app",
		Host: "192.0.2.7", Port: 80, Protocol: probe.TCP, Check: "http", Required: probe.Required,
	}}}
	results := []probe.Result{{
		Outcome: probe.OutcomeProtocolError, Duration: time.Millisecond,
		Details: map[string]string{
			probe.DetailReason: "status \x1b[2J\x1b[H500",
			"banner":           "nginx\x1b]0;pwned\x07",
		},
		Err: errors.New("http: bad answer \x1b[31m|<b>\n\x9b"),
	}}
	return cat, plan, results
}

// noRawControl fails when out holds an escape or other control byte.
func noRawControl(t *testing.T, name, out string) {
	t.Helper()
	for i, r := range out {
		if r == '\n' || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\uFFFD' {
			t.Errorf("%s: raw control %q at byte %d:\n%s", name, r, i, out)
			return
		}
	}
}

// httpHint is probe.Hint for an http check's protocol_error.
const httpHint = "an HTTP server answered, but not as expected: check the path, status codes and body the check expects"

func TestPeerEscapesAreNeutralised(t *testing.T) {
	cat, plan, results := hostile()
	rep := NewCheck(cat, plan, results, false)

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	noRawControl(t, "text", text.String())
	for _, want := range []string{
		"      status \\x1b[2J\\x1b[H500 — " + httpHint + "\n",
		"      error: http: bad answer \\x1b[31m|<b>\\n\\x9b\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}

	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	noRawControl(t, "markdown", md.String())
	if want := "| status \\\\x1b[2J\\\\x1b[H500 — " + httpHint +
		" (`http: bad answer \\\\x1b[31m\\|&lt;b&gt;\\\\n\\\\x9b`) |\n"; !strings.Contains(md.String(), want) {
		t.Errorf("markdown lacks %q:\n%s", want, md.String())
	}

	var junit bytes.Buffer
	if err := rep.WriteJUnit(&junit); err != nil {
		t.Fatal(err)
	}
	noRawControl(t, "junit", junit.String())
	var suites struct {
		Suites []struct {
			Cases []struct {
				Failure struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &suites); err != nil {
		t.Fatalf("%v\n%s", err, junit.String())
	}
	f := suites.Suites[0].Cases[0].Failure
	if want := "protocol_error: status \\x1b[2J\\x1b[H500 — " + httpHint; f.Message != want {
		t.Errorf("JUnit message %q, want %q", f.Message, want)
	}
	if want := "http: bad answer \\x1b[31m|<b>\\n\\x9b"; f.Text != want {
		t.Errorf("JUnit text %q, want %q", f.Text, want)
	}

	var probeText bytes.Buffer
	if err := WriteResultText(&probeText, plan.Targets[0], results[0]); err != nil {
		t.Fatal(err)
	}
	noRawControl(t, "probe text", probeText.String())
	for _, want := range []string{"  banner: nginx\\x1b]0;pwned\\x07\n", "  error:   http: bad answer \\x1b[31m|<b>\\n\\x9b\n"} {
		if !strings.Contains(probeText.String(), want) {
			t.Errorf("probe text lacks %q:\n%s", want, probeText.String())
		}
	}

	// JSON keeps the peer's bytes, escaped by encoding/json.
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	noRawControl(t, "json", js.String())
	if !strings.Contains(js.String(), `"error": "http: bad answer \u001b[31m|\u003cb\u003e\n\ufffd"`) {
		t.Errorf("JSON error text:\n%s", js.String())
	}
}
