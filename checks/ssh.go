package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

const (
	// sshMaxLine is the longest identification line RFC 4253 §4.2 allows,
	// CR LF included; other lines before it are held to the same bound.
	sshMaxLine = 255
	// sshMaxLines bounds the lines a server may send before its
	// identification.
	sshMaxLines = 32
)

// sshIdent is what the check announces itself as (RFC 4253 §4.2: both
// sides send an identification string).
const sshIdent = "SSH-2.0-flowprobe\r\n"

var sshKind = register(Spec[SSHOptions]{
	Name:      "ssh",
	Transport: probe.TCP,
	Summary:   "SSH identification banner",
	Defaults:  newSSHOptions,
	Hints:     []Hint{{App: "ssh"}},
	Run:       runSSH,

	DefaultPort: 22,
})

// SSHOptions are the options of the ssh check: expect, when set, is a
// regular expression the server's identification line must match.
type SSHOptions struct {
	ExpectOption `yaml:",inline"`
}

func newSSHOptions() *SSHOptions { return &SSHOptions{} }

// runSSH connects, announces itself and reads the server's
// identification line ("SSH-2.0-softwareversion comments").
func runSSH(ctx context.Context, t probe.Target, o *SSHOptions, r *probe.Result) error {
	conn, done, err := connect(ctx, &t, "tcp", 0, r)
	if err != nil {
		return err
	}
	defer done()

	start := time.Now()
	banner, err := sshReadIdent(conn)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	if err != nil {
		return err
	}
	r.SetDetail("banner", banner)
	proto, software, _ := strings.Cut(strings.TrimPrefix(banner, "SSH-"), "-")
	r.SetDetail("proto_version", proto)
	if f := strings.Fields(software); len(f) > 0 {
		r.SetDetail("software_version", f[0])
	}
	if proto != "2.0" && proto != "1.99" {
		r.SetDetail(probe.DetailReason, "server speaks SSH protocol "+proto+" only")
		return Fail(probe.OutcomeProtocolError, "ssh: protocol version %q, want 2.0", proto)
	}
	if o.expect != nil && !o.expect.MatchString(banner) {
		r.SetDetail(probe.DetailReason, "banner does not match expect")
		return Fail(probe.OutcomeProtocolError, "ssh: banner %q does not match %q", banner, o.Expect)
	}
	return nil
}

// sshReadIdent sends the check's own identification and reads lines until
// the server's, which starts with "SSH-". Every line is bounded in length
// and the lines in count.
func sshReadIdent(conn io.ReadWriter) (string, error) {
	if _, err := io.WriteString(conn, sshIdent); err != nil {
		return "", fmt.Errorf("ssh: send identification: %w", err)
	}
	br := bufio.NewReaderSize(conn, sshMaxLine+1)
	for range sshMaxLines {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull) || len(line) > sshMaxLine:
			return "", Fail(probe.OutcomeProtocolError, "ssh: a line longer than %d bytes: not an SSH server", sshMaxLine)
		case err != nil && isEOF(err):
			return "", Fail(probe.OutcomeProtocolError, "ssh: the server closed the connection before its identification: %w", err)
		case err != nil:
			return "", fmt.Errorf("ssh: read identification: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if bytes.HasPrefix(line, []byte("SSH-")) {
			if !sshPrintable(line) {
				return "", Fail(probe.OutcomeProtocolError, "ssh: identification line with control characters")
			}
			return string(line), nil
		}
	}
	return "", Fail(probe.OutcomeProtocolError, "ssh: no identification in the first %d lines", sshMaxLines)
}

// sshPrintable reports whether b holds printable US-ASCII only (RFC 4253
// §4.2), so the banner is safe to show.
func sshPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
