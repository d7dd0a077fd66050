package checks

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

func TestBanner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   map[string]any
		reply  string
		want   probe.Outcome
		reason string
		banner string
	}{
		{"ftp", map[string]any{"protocol": "ftp"}, "220 (vsFTPd 3.0.3)\r\n", probe.OutcomeOK, "", "220 (vsFTPd 3.0.3)"},
		{"smtp multi-line", map[string]any{"protocol": "smtp"},
			"220-mail.example.org ESMTP\r\n220-more text\r\n220 ready\r\n", probe.OutcomeOK, "", "220-mail.example.org ESMTP"},
		{"ftp multi-line with free lines", nil,
			"220-Welcome\r\n  to the archive\r\n220 \r\n", probe.OutcomeOK, "", "220-Welcome"},
		{"bare code and LF", nil, "220\n", probe.OutcomeOK, "", "220"},
		{"ftp waits past 120", map[string]any{"protocol": "ftp"},
			"120 ready in 1 minute\r\n220 ready\r\n", probe.OutcomeOK, "", "220 ready"},
		{"120 is not a greeting for smtp", map[string]any{"protocol": "smtp"},
			"120 ready in 1 minute\r\n220 ready\r\n", probe.OutcomeProtocolError, "reply 120 where a greeting (220) was due", ""},
		{"ftp not available", map[string]any{"protocol": "ftp"},
			"421 Service not available, closing control connection.\r\n", probe.OutcomeProtocolError,
			"421 Service not available, closing control connection.", ""},
		{"smtp no service", map[string]any{"protocol": "smtp"},
			"554 5.3.2 mail.example.org not accepting connections\r\n", probe.OutcomeProtocolError,
			"554 5.3.2 mail.example.org not accepting connections", ""},
		{"expect matches", map[string]any{"expect": "ESMTP Postfix"}, "220 mail.example.org ESMTP Postfix\r\n", probe.OutcomeOK, "", ""},
		{"expect does not match", map[string]any{"expect": "ESMTP Postfix"}, "220 mail.example.org ESMTP Exim\r\n",
			probe.OutcomeProtocolError, "greeting does not match expect", ""},
		{"ssh banner", nil, "SSH-2.0-OpenSSH_9.2\r\n", probe.OutcomeProtocolError, `not a greeting: "SSH-2.0-OpenSSH_9.2"`, ""},
		{"http", nil, "HTTP/1.1 400 Bad Request\r\n\r\n", probe.OutcomeProtocolError, `not a greeting: "HTTP/1.1 400 Bad Request"`, ""},
		{"code without space", nil, "220ready\r\n", probe.OutcomeProtocolError, `not a greeting: "220ready"`, ""},
		{"closed without a word", nil, "", probe.OutcomeProtocolError, "the peer closed the connection without a greeting", ""},
		{"closed in mid-line", nil, "220 rea", probe.OutcomeProtocolError, `the peer closed the connection in mid-line: "220 rea"`, ""},
		{"closed in mid-reply", nil, "220-first\r\n", probe.OutcomeProtocolError, "the peer closed the connection without a greeting", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := appTCPPeer(t, func(c net.Conn) { _, _ = io.WriteString(c, tc.reply) })
			r := appRun(t, "banner", port, tc.opts)
			talkWant(t, r, tc.want, tc.reason)
			if tc.banner != "" && r.Details[DetailBanner] != tc.banner {
				t.Errorf("banner %q, want %q", r.Details[DetailBanner], tc.banner)
			}
		})
	}
}

// The check says QUIT after the greeting, so servers log a clean goodbye.
func TestBannerQuits(t *testing.T) {
	got := make(chan string, 1)
	port := appTCPPeer(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "220 ready\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	})
	r := appRun(t, "banner", port, nil)
	talkWant(t, r, probe.OutcomeOK, "")
	if line := <-got; line != "QUIT\r\n" {
		t.Errorf("the server read %q, want QUIT", line)
	}
	if r.Details[DetailReplyCode] != "220" {
		t.Errorf("reply_code %q", r.Details[DetailReplyCode])
	}
}

func TestBannerHostile(t *testing.T) {
	talkWant(t, appRun(t, "banner", talkFlood(t, []byte("x")), nil),
		probe.OutcomeProtocolError, "a line longer than 1024 bytes")
	talkWant(t, appRun(t, "banner", talkFlood(t, []byte("220-again\r\n")), nil),
		probe.OutcomeProtocolError, "a reply of more than 64 lines")
	talkWant(t, appRun(t, "banner", talkFlood(t, []byte("120 soon\r\n")), map[string]any{"protocol": "ftp"}),
		probe.OutcomeProtocolError, "more than 2 preliminary replies")
	talkTransport(t, "banner", nil, 0)
}

func TestBannerOptions(t *testing.T) {
	if _, err := Decode("banner", map[string]any{"protocol": "pop3"}); err == nil {
		t.Error("protocol pop3 decoded")
	}
	if _, err := Decode("banner", map[string]any{"expect": "("}); err == nil {
		t.Error("a bad expect decoded")
	}
}

// FuzzReadGreeting: whatever a server sends, reading its greeting ends in
// a greeting with a valid code or a protocol_error, never a panic.
func FuzzReadGreeting(f *testing.F) {
	f.Add([]byte("220 ready\r\n"), false)
	f.Add([]byte("220-a\r\nfree\r\n220 b\r\n"), true)
	f.Add([]byte("120 wait\r\n421 gone\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, prelim bool) {
		g, err := readGreeting(bufio.NewReaderSize(io.LimitReader(bytes.NewReader(in), bannerLimit), bannerMaxLine), prelim)
		if err != nil {
			if o := Classify(err, true); o != probe.OutcomeProtocolError {
				t.Fatalf("error %v classified %v", err, o)
			}
			return
		}
		if g.code < 100 || g.code > 599 || len(g.line) > 128*3 {
			t.Fatalf("greeting %+v", g)
		}
	})
}
