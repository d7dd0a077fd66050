package checks

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"

	"github.com/flowprobe/flowprobe/probe"
)

// The rmi check opens a Java RMI (JRMP) connection the way a client does:
// "JRMI", version 2, StreamProtocol; the server acknowledges with
// ProtocolAck and the host and port it sees the client at (Java RMI
// specification, 10.2 "RMI Transport Protocol"). It hangs up there, before
// any call.
var rmiKind = register(Spec[RMIOptions]{
	Name:        "rmi",
	DefaultPort: 1099,
	Transport:   probe.TCP,
	Summary:     "Java RMI (JRMP) handshake: ProtocolAck",
	Defaults:    func() *RMIOptions { return &RMIOptions{} },
	Hints:       []Hint{{App: "rmi"}},
	Run:         runRMI,
})

// DetailRMISeenAs is the host:port at which the RMI server sees the check,
// which reveals NAT.
const DetailRMISeenAs = "rmi_seen_as"

// RMIOptions are the options of the rmi check; it has none yet.
type RMIOptions struct{}

const (
	rmiProtocolAck          = 0x4e
	rmiProtocolNotSupported = 0x4f
	// rmiMaxHost bounds the host name in the acknowledgement: a DNS name
	// has at most 253 bytes, an IPv6 literal 45.
	rmiMaxHost = 255
)

// rmiHandshake is the client's header: magic, version, StreamProtocol.
var rmiHandshake = []byte{'J', 'R', 'M', 'I', 0, 2, 0x4b}

func runRMI(ctx context.Context, t probe.Target, _ *RMIOptions, r *probe.Result) error {
	return talk(ctx, &t, r, 1+2+rmiMaxHost+4, func(c io.ReadWriter) error {
		if err := send("rmi", c, rmiHandshake); err != nil {
			return err
		}
		seen, err := readRMIAck(c)
		if err != nil {
			return err
		}
		r.SetDetail(DetailRMISeenAs, seen)
		return nil
	})
}

// readRMIAck reads the server's acknowledgement and returns the endpoint it
// names as host:port.
func readRMIAck(rd io.Reader) (string, error) {
	var ack [3]byte // ProtocolAck and the length of the host
	if err := readAnswer("rmi", rd, ack[:1]); err != nil {
		return "", err
	}
	switch ack[0] {
	case rmiProtocolAck:
	case rmiProtocolNotSupported:
		return "", badAnswer("rmi", "the server does not support the stream protocol")
	default:
		return "", badAnswer("rmi", "not a JRMP acknowledgement: 0x%02x", ack[0])
	}
	if err := readAnswer("rmi", rd, ack[1:]); err != nil {
		return "", err
	}
	n := int(binary.BigEndian.Uint16(ack[1:]))
	if n > rmiMaxHost {
		return "", badAnswer("rmi", "a host name of %d bytes in the acknowledgement", n)
	}
	rest := make([]byte, n+4)
	if err := readAnswer("rmi", rd, rest); err != nil {
		return "", err
	}
	host := rest[:n]
	for _, b := range host {
		if b <= ' ' || b > '~' {
			return "", badAnswer("rmi", "a host name that is not printable: %s", quoteBytes(host, 32))
		}
	}
	port := binary.BigEndian.Uint32(rest[n:])
	if port > 65535 {
		return "", badAnswer("rmi", "port %d in the acknowledgement", port)
	}
	return net.JoinHostPort(string(host), strconv.Itoa(int(port))), nil
}
