package checks

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

var netbiosNSKind = register(Spec[NetBIOSNSOptions]{
	Name:        "netbios-ns",
	DefaultPort: 137,
	Transport:   probe.UDP,
	Summary:     "NetBIOS node status (NBSTAT) query: the names the node has registered",
	Defaults:    func() *NetBIOSNSOptions { return &NetBIOSNSOptions{} },
	Hints:       []Hint{{App: "netbios-ns"}},
	Run:         runNetBIOSNS,
})

// NetBIOSNSOptions are the options of the netbios-ns check.
type NetBIOSNSOptions struct {
	// Name, when set, must be among the node's names (without the suffix,
	// case-insensitive), e.g. the server's NetBIOS name.
	Name string `yaml:"name"`
}

// Validate checks the options.
func (o *NetBIOSNSOptions) Validate() error {
	if len(o.Name) > 15 {
		return fmt.Errorf("name %q is longer than the 15 characters of a NetBIOS name", o.Name)
	}
	return nil
}

// RFC 1002 §4.2.1: the question and resource record types of a node status.
const (
	nbstatType   = 0x21
	nbClassIN    = 1
	nbMaxLabels  = 8
	nbNameSize   = 18 // 15 characters, the suffix, two bytes of flags
	nbShownNames = 8
)

// netbiosNodeStatusRequest asks the node status of "*" (RFC 1002 §4.2.17).
func netbiosNodeStatusRequest(id uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) // flags, QD 1, AN, NS, AR 0
	b = append(b, 32)
	name := [16]byte{'*'}
	for _, c := range name {
		b = append(b, 'A'+c>>4, 'A'+c&0x0f)
	}
	return append(b, 0, 0, nbstatType, 0, nbClassIN)
}

// nbstatReply is what a node status response says.
type nbstatReply struct {
	names []string // NAME<suffix>, group names marked with a trailing "*"
	mac   string
}

// parseNBSTATReply decodes a node status response to request id.
func parseNBSTATReply(b []byte, id uint16) (nbstatReply, error) {
	var rep nbstatReply
	w := wire{b: b}
	gotID, flags, _, an := w.u16(), w.u16(), w.u16(), w.u16()
	w.bytes(4) // NS, AR counts
	switch {
	case w.err != nil:
		return rep, fmt.Errorf("not a NetBIOS name service message: %w", w.err)
	case gotID != id:
		return rep, fmt.Errorf("NetBIOS transaction ID %d does not match the request's %d", gotID, id)
	case flags&0x8000 == 0:
		return rep, errors.New("NetBIOS message is a request, not a response")
	case flags&0x000f != 0:
		return rep, fmt.Errorf("NetBIOS response code %d", flags&0x000f)
	case an == 0:
		return rep, errors.New("NetBIOS response without an answer")
	}
	skipNBName(&w)
	typ, class := w.u16(), w.u16()
	w.bytes(4) // TTL
	rdata := wire{b: w.bytes(int(w.u16()))}
	if w.err != nil {
		return rep, fmt.Errorf("NetBIOS answer: %w", w.err)
	}
	if typ != nbstatType || class != nbClassIN {
		return rep, fmt.Errorf("NetBIOS answer of type 0x%x class %d, not a node status", typ, class)
	}
	n := int(rdata.u8())
	for range n {
		e := rdata.bytes(nbNameSize)
		if e == nil {
			break
		}
		name := strings.TrimRight(string(e[:15]), " \x00")
		entry := fmt.Sprintf("%s<%02x>", firstLine([]byte(name)), e[15])
		if e[16]&0x80 != 0 {
			entry += "*"
		}
		rep.names = append(rep.names, entry)
	}
	if mac := rdata.bytes(6); mac != nil {
		rep.mac = net.HardwareAddr(mac).String()
	}
	if rdata.err != nil && len(rep.names) < n {
		return rep, fmt.Errorf("node status lists %d names but holds %d", n, len(rep.names))
	}
	if n == 0 {
		return rep, errors.New("node status without names")
	}
	return rep, nil
}

// skipNBName skips an encoded name: labels up to a zero, or a pointer.
func skipNBName(w *wire) {
	for range nbMaxLabels {
		l := w.u8()
		switch {
		case w.err != nil || l == 0:
			return
		case l&0xc0 == 0xc0:
			w.u8()
			return
		}
		w.bytes(int(l))
	}
	w.err = errors.New("too many labels in a NetBIOS name")
}

// runNetBIOSNS asks the node status and judges the reply.
func runNetBIOSNS(ctx context.Context, t probe.Target, o *NetBIOSNSOptions, r *probe.Result) error {
	id := uint16(newXID())
	reply, err := exchange(ctx, &t, "udp", cmp.Or(t.Port, 137), netbiosNodeStatusRequest(id), streamFraming{}, r)
	if err != nil {
		return err
	}
	rep, err := parseNBSTATReply(reply, id)
	if err != nil {
		return replyError(r, "netbios-ns", err)
	}
	shown := rep.names[:min(len(rep.names), nbShownNames)]
	r.SetDetail("netbios_names", strings.Join(shown, ", "))
	if rep.mac != "" {
		r.SetDetail("mac", rep.mac)
	}
	if o.Name != "" {
		for _, n := range rep.names {
			if base, _, _ := strings.Cut(n, "<"); strings.EqualFold(base, o.Name) {
				return nil
			}
		}
		return replyError(r, "netbios-ns", fmt.Errorf("the node does not have the name %s", o.Name))
	}
	return nil
}
