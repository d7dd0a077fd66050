package checks

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/flowprobe/flowprobe/probe"
)

var ipmiKind = register(Spec[IPMIOptions]{
	Name:        "ipmi",
	DefaultPort: 623,
	Transport:   probe.UDP,
	Summary:     "IPMI over LAN: Get Channel Authentication Capabilities, or an RMCP presence ping",
	Defaults:    func() *IPMIOptions { return &IPMIOptions{Mode: ipmiCapabilities} },
	Hints:       []Hint{{App: "ipmi"}},
	Run:         runIPMI,
})

// Modes of the ipmi check.
const (
	ipmiCapabilities = "capabilities"
	ipmiPing         = "ping"
)

// IPMIOptions are the options of the ipmi check.
type IPMIOptions struct {
	// Mode is "capabilities" (default: the session-less Get Channel
	// Authentication Capabilities every IPMI client sends first) or "ping"
	// (an ASF presence ping, which not every BMC answers).
	Mode string `yaml:"mode"`
}

// Validate checks the options.
func (o *IPMIOptions) Validate() error {
	if o.Mode != ipmiCapabilities && o.Mode != ipmiPing {
		return fmt.Errorf("mode %q: want %s or %s", o.Mode, ipmiCapabilities, ipmiPing)
	}
	return nil
}

// RMCP (DMTF ASF 2.0 §3.2.2) and IPMI (IPMI 2.0 §13.6, §22.13) constants.
const (
	rmcpVersion     = 0x06
	rmcpClassASF    = 0x06
	rmcpClassIPMI   = 0x07
	asfIANA         = 4542
	asfPresencePing = 0x80
	asfPresencePong = 0x40
	ipmiBMCAddr     = 0x20
	ipmiSWID        = 0x81
	ipmiNetFnApp    = 0x06
	ipmiCmdAuthCaps = 0x38
)

// ipmiChecksum is the two's complement checksum of b.
func ipmiChecksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// ipmiRequest builds the request of mode with sequence/tag seq (0-63).
func ipmiRequest(mode string, seq byte) []byte {
	if mode == ipmiPing {
		return []byte{rmcpVersion, 0, 0xff, rmcpClassASF, 0, 0, 0x11, 0xbe, asfPresencePing, seq, 0, 0}
	}
	hdr := []byte{ipmiBMCAddr, ipmiNetFnApp << 2}
	body := []byte{ipmiSWID, seq << 2, ipmiCmdAuthCaps, 0x8e, 0x04} // current channel, v2 data; admin
	msg := append(append(hdr, ipmiChecksum(hdr)), body...)
	msg = append(msg, ipmiChecksum(body))
	b := []byte{rmcpVersion, 0, 0xff, rmcpClassIPMI, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(msg))}
	return append(b, msg...)
}

// ipmiReply is what a valid reply says.
type ipmiReply struct {
	ipmiV2        bool // the BMC supports IPMI 2.0 (RMCP+)
	ipmiSupported bool // ping: the entity supports IPMI
}

// parseIPMIReply decodes the reply to the request of mode with seq.
func parseIPMIReply(b []byte, mode string, seq byte) (ipmiReply, error) {
	var rep ipmiReply
	w := wire{b: b}
	version, _, _, class := w.u8(), w.u8(), w.u8(), w.u8()
	switch {
	case w.err != nil:
		return rep, fmt.Errorf("not an RMCP message: %w", w.err)
	case version != rmcpVersion:
		return rep, fmt.Errorf("not an RMCP message (version 0x%02x)", version)
	}
	if mode == ipmiPing {
		iana, typ, tag, _, n := w.u32(), w.u8(), w.u8(), w.u8(), w.u8()
		data := w.bytes(int(n))
		switch {
		case w.err != nil:
			return rep, fmt.Errorf("presence pong: %w", w.err)
		case class != rmcpClassASF || iana != asfIANA || typ != asfPresencePong:
			return rep, fmt.Errorf("RMCP class 0x%02x type 0x%02x is not a presence pong", class, typ)
		case tag != seq:
			return rep, fmt.Errorf("presence pong tag %d does not match the ping's %d", tag, seq)
		case len(data) < 9:
			return rep, errors.New("presence pong too short")
		}
		rep.ipmiSupported = data[8]&0x80 != 0
		return rep, nil
	}
	if class != rmcpClassIPMI {
		return rep, fmt.Errorf("RMCP class 0x%02x is not IPMI", class)
	}
	auth := w.u8()
	w.bytes(8) // session sequence and ID
	if auth != 0 {
		w.bytes(16) // authentication code
	}
	msg := w.bytes(int(w.u8()))
	switch {
	case w.err != nil:
		return rep, fmt.Errorf("IPMI session: %w", w.err)
	case len(msg) < 8:
		return rep, errors.New("IPMI message too short")
	case ipmiChecksum(msg[:2]) != msg[2] || ipmiChecksum(msg[3:len(msg)-1]) != msg[len(msg)-1]:
		return rep, errors.New("IPMI message checksum wrong")
	case msg[1]>>2 != ipmiNetFnApp|1 || msg[5] != ipmiCmdAuthCaps:
		return rep, fmt.Errorf("IPMI netfn 0x%02x command 0x%02x is not the capabilities response", msg[1]>>2, msg[5])
	case msg[4]>>2 != seq:
		return rep, fmt.Errorf("IPMI sequence %d does not match the request's %d", msg[4]>>2, seq)
	case msg[6] != 0:
		return rep, fmt.Errorf("IPMI completion code 0x%02x", msg[6])
	case len(msg) < 10:
		return rep, errors.New("IPMI capabilities response too short")
	}
	rep.ipmiV2 = msg[8]&0x80 != 0
	return rep, nil
}

// runIPMI sends the request of the mode and judges the reply.
func runIPMI(ctx context.Context, t probe.Target, o *IPMIOptions, r *probe.Result) error {
	seq := byte(newXID() & 0x3f)
	reply, err := exchange(ctx, &t, "udp", cmp.Or(t.Port, 623), ipmiRequest(o.Mode, seq), streamFraming{}, r)
	if err != nil {
		return err
	}
	rep, err := parseIPMIReply(reply, o.Mode, seq)
	if err != nil {
		return replyError(r, "ipmi", err)
	}
	if o.Mode == ipmiPing {
		r.SetDetail("ipmi_supported", fmt.Sprint(rep.ipmiSupported))
	} else {
		r.SetDetail("ipmi_v2", fmt.Sprint(rep.ipmiV2))
	}
	return nil
}
