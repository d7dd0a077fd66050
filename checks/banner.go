package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/flowprobe/flowprobe/probe"
)

// FTP (RFC 959 §4.2) and SMTP (RFC 5321 §4.2) greet with the same kind of
// reply: a three-digit code, then text, on one line or several
// ("220-..." lines ended by "220 ..."). The catalog's ftp hint binds here;
// its smtp flow is printed as UDP and so keeps the udp check.
var bannerKind = register(Spec[BannerOptions]{
	Name:      "banner",
	Transport: probe.TCP,
	Summary:   "FTP or SMTP greeting: a 220 reply from the service",
	Defaults:  func() *BannerOptions { return &BannerOptions{} },
	Hints: []Hint{
		{App: "ftp", Options: map[string]any{"protocol": "ftp"}},
		{App: "smtp", Options: map[string]any{"protocol": "smtp"}},
	},
	Run: runBanner,
})

// Bounds of a greeting: RFC 5321 allows reply lines of 512 bytes; a
// multi-line greeting gets a few more lines than real servers send.
const (
	bannerMaxLine    = 1024
	bannerMaxLines   = 64
	bannerMaxReplies = 3 // FTP may say 120 ("ready in n minutes") before 220
	bannerLimit      = bannerMaxReplies * bannerMaxLines * bannerMaxLine
)

// Details of the banner check.
const (
	DetailReplyCode = "reply_code" // the greeting's reply code, e.g. "220"
	DetailProtocol  = "protocol"   // the protocol the check spoke
)

// BannerOptions are the options of the banner check.
type BannerOptions struct {
	// Protocol is ftp, smtp, or empty for either: both greet with 220.
	// ftp also waits past a 120 reply ("service ready in n minutes").
	Protocol string `yaml:"protocol"`
	// Expect (see ExpectOption) is matched against the greeting's first
	// line, e.g. "ESMTP Postfix".
	ExpectOption `yaml:",inline"`
}

// Validate checks the protocol and compiles expect.
func (o *BannerOptions) Validate() error {
	switch o.Protocol {
	case "", "ftp", "smtp":
	default:
		return fmt.Errorf("protocol %q: want ftp or smtp", o.Protocol)
	}
	return o.ExpectOption.Validate()
}

// greeting is a service's greeting: the code and the first line of the
// final reply.
type greeting struct {
	code int
	line string // the first line of the reply, control characters replaced
	text string // line without the code
}

// runBanner reads the greeting, judges its code and says QUIT.
func runBanner(ctx context.Context, t probe.Target, o *BannerOptions, r *probe.Result) error {
	if o.Protocol != "" {
		r.SetDetail(DetailProtocol, o.Protocol)
	}
	return talk(ctx, &t, r, bannerLimit, func(c io.ReadWriter) error {
		g, err := readGreeting(bufio.NewReaderSize(c, bannerMaxLine), o.Protocol == "ftp")
		if err != nil {
			return err
		}
		r.SetDetail(DetailBanner, g.line)
		r.SetDetail(DetailReplyCode, strconv.Itoa(g.code))
		// A polite goodbye; the verdict does not wait for its answer.
		_, _ = io.WriteString(c, "QUIT\r\n")
		switch {
		case g.code >= 400:
			return badAnswer("banner", "%d %s", g.code, g.text)
		case g.code != 220:
			return badAnswer("banner", "reply %d where a greeting (220) was due", g.code)
		case o.expect != nil && !o.expect.MatchString(g.line):
			return badAnswer("banner", "greeting does not match expect")
		}
		return nil
	})
}

// readGreeting reads replies until one that is not preliminary (1xx, when
// prelim is allowed) and returns it.
func readGreeting(br *bufio.Reader, prelim bool) (greeting, error) {
	for range bannerMaxReplies {
		g, err := readReply(br)
		if err != nil || !prelim || g.code/100 != 1 {
			return g, err
		}
	}
	return greeting{}, badAnswer("banner", "more than %d preliminary replies", bannerMaxReplies-1)
}

// readReply reads one reply of one or more lines: "ddd text" or
// "ddd-text" ... "ddd text".
func readReply(br *bufio.Reader) (greeting, error) {
	line, err := readReplyLine(br)
	if err != nil {
		return greeting{}, err
	}
	code, sep, ok := replyCode(line)
	if !ok {
		return greeting{}, badAnswer("banner", "not a greeting: %s", quoteBytes(line, 32))
	}
	g := greeting{code: code, line: firstLine(line), text: firstLine(bytes.TrimLeft(line[min(4, len(line)):], " "))}
	if sep != '-' {
		return g, nil
	}
	for range bannerMaxLines - 1 {
		next, err := readReplyLine(br)
		if err != nil {
			return greeting{}, err
		}
		// FTP lets the lines between the first and the last be anything;
		// the last repeats the code and a space.
		if c, s, ok := replyCode(next); ok && c == code && s != '-' {
			return g, nil
		}
	}
	return greeting{}, badAnswer("banner", "a reply of more than %d lines", bannerMaxLines)
}

// readReplyLine reads one line, without its CRLF or LF.
func readReplyLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, badAnswer("banner", "a line longer than %d bytes", bannerMaxLine)
	case err != nil && isEOF(err) && len(line) == 0:
		return nil, badAnswer("banner", "the peer closed the connection without a greeting")
	case err != nil && isEOF(err):
		return nil, badAnswer("banner", "the peer closed the connection in mid-line: %s", quoteBytes(line, 32))
	case err != nil:
		return nil, fmt.Errorf("banner: read the greeting: %w", err)
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// replyCode parses the code of a reply line and the character after it
// (' ', '-', or 0 at the end of the line).
func replyCode(line []byte) (code int, sep byte, ok bool) {
	if len(line) < 3 || line[0] < '1' || line[0] > '5' || !isDigit(line[1]) || !isDigit(line[2]) {
		return 0, 0, false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, 0, true
	}
	if line[3] != ' ' && line[3] != '-' {
		return 0, 0, false
	}
	return code, line[3], true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
