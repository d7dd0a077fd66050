package checks

import (
	"context"
	"io"
	"strconv"

	"github.com/flowprobe/flowprobe/probe"
)

// The vnc check reads the ProtocolVersion message an RFB server sends
// first (RFC 6143 §7.1.1), "RFB 003.008\n", and hangs up.
var vncKind = register(Spec[VNCOptions]{
	Name:        "vnc",
	DefaultPort: 5900,
	Transport:   probe.TCP,
	Summary:     "VNC (RFB) server: its protocol version",
	Defaults:    func() *VNCOptions { return &VNCOptions{} },
	Hints:       []Hint{{App: "vnc"}},
	Run:         runVNC,
})

// DetailRFBVersion is the protocol version a VNC server offered, e.g. "3.8".
const DetailRFBVersion = "rfb_version"

// rfbVersionLen is the length of "RFB xxx.yyy\n".
const rfbVersionLen = 12

// VNCOptions are the options of the vnc check.
type VNCOptions struct {
	// Expect (see ExpectOption) is matched against the version, e.g.
	// "^3\.8$".
	ExpectOption `yaml:",inline"`
}

func runVNC(ctx context.Context, t probe.Target, o *VNCOptions, r *probe.Result) error {
	return talk(ctx, &t, r, rfbVersionLen, func(c io.ReadWriter) error {
		var b [rfbVersionLen]byte
		if err := readAnswer("vnc", c, b[:]); err != nil {
			return err
		}
		v, err := parseRFBVersion(b)
		if err != nil {
			return err
		}
		r.SetDetail(DetailRFBVersion, v)
		if o.expect != nil && !o.expect.MatchString(v) {
			return badAnswer("vnc", "version %s does not match expect", v)
		}
		return nil
	})
}

// parseRFBVersion checks the ProtocolVersion message and returns the
// version as major.minor without leading zeros ("3.8").
func parseRFBVersion(b [rfbVersionLen]byte) (string, error) {
	if string(b[:4]) != "RFB " || b[7] != '.' || b[11] != '\n' {
		return "", badAnswer("vnc", "not an RFB protocol version: %s", quoteBytes(b[:], rfbVersionLen))
	}
	num := func(d []byte) (int, bool) {
		n := 0
		for _, c := range d {
			if !isDigit(c) {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	major, ok1 := num(b[4:7])
	minor, ok2 := num(b[8:11])
	if !ok1 || !ok2 {
		return "", badAnswer("vnc", "not an RFB protocol version: %s", quoteBytes(b[:], rfbVersionLen))
	}
	return strconv.Itoa(major) + "." + strconv.Itoa(minor), nil
}
