package checks

import (
	"bufio"
	"errors"
	"io"
	"net"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/flowprobe/flowprobe/probe"
)

// What one LDAP message may hold before it is decoded. The ldap library
// decodes a whole message into a tree of packets, about a hundred times
// the size of its smallest elements: the byte limit of the connection
// (ldapReadLimit) alone would let 1 MiB of two-byte elements cost 110 MiB
// of heap. A bind response or a root DSE entry needs a few hundred bytes
// and a few dozen elements.
const (
	ldapMaxMessage  = 64 << 10
	ldapMaxElements = 4096
)

// errLDAPMessage marks a message the check refuses to decode.
var errLDAPMessage = errors.New("LDAP message refused")

// ldapGuard hands the ldap library one checked message at a time: each is
// read whole, its length and element count bounded, before the library
// sees a byte of it. Failures are noted on rc, where ldapError finds why
// the library's read failed.
type ldapGuard struct {
	net.Conn
	r       *bufio.Reader
	rc      *ldapConn
	pending []byte
	err     error
}

// guardLDAP wraps conn, an established LDAP connection above rc.
func guardLDAP(conn net.Conn, rc *ldapConn) net.Conn {
	return &ldapGuard{Conn: conn, r: bufio.NewReaderSize(conn, 4096), rc: rc}
}

func (g *ldapGuard) Read(b []byte) (int, error) {
	if len(g.pending) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		msg, err := readLDAPMessage(g.r)
		if err != nil {
			g.err = err
			if errors.Is(err, errLDAPMessage) && g.rc != nil {
				g.rc.note(0, err)
			}
			return 0, err
		}
		g.pending = msg
	}
	n := copy(b, g.pending)
	g.pending = g.pending[n:]
	return n, nil
}

// ldapReadPacket reads and decodes one bounded LDAP message from r.
func ldapReadPacket(r io.Reader) (*ber.Packet, error) {
	msg, err := readLDAPMessage(r)
	if err != nil {
		return nil, err
	}
	p, err := ber.DecodePacketErr(msg)
	if err != nil {
		return nil, Fail(probe.OutcomeProtocolError, "decode LDAP message: %w", err)
	}
	return p, nil
}

// readLDAPMessage reads one BER element from r, header and contents, and
// checks it: a definite length of at most ldapMaxMessage bytes, and at
// most ldapMaxElements well-formed elements inside.
func readLDAPMessage(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 0, 16)
	var one [1]byte
	next := func() (byte, error) {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			if len(hdr) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		hdr = append(hdr, one[0])
		return one[0], nil
	}
	for {
		if _, _, n, err := berHeader(hdr); err == nil {
			hdr = hdr[:n]
			break
		} else if !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		if _, err := next(); err != nil {
			return nil, err
		}
	}
	_, length, n, _ := berHeader(hdr)
	if length > ldapMaxMessage {
		return nil, Fail(probe.OutcomeProtocolError, "%w: %d bytes, more than the %d the check reads", errLDAPMessage, length, ldapMaxMessage)
	}
	msg := make([]byte, n+length)
	copy(msg, hdr)
	if _, err := io.ReadFull(r, msg[n:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if err := countBERElements(msg, ldapMaxElements); err != nil {
		return nil, err
	}
	return msg, nil
}

// berHeader parses the identifier and length octets at the start of b. It
// returns whether the element is constructed, its content length and the
// header's size; io.ErrUnexpectedEOF when b ends inside the header.
func berHeader(b []byte) (constructed bool, length, size int, err error) {
	if len(b) == 0 {
		return false, 0, 0, io.ErrUnexpectedEOF
	}
	constructed = b[0]&0x20 != 0
	i := 1
	if b[0]&0x1f == 0x1f { // high tag number: base-128, at most 4 octets
		for {
			if i >= len(b) {
				return false, 0, 0, io.ErrUnexpectedEOF
			}
			if i > 4 {
				return false, 0, 0, Fail(probe.OutcomeProtocolError, "%w: tag number too long", errLDAPMessage)
			}
			i++
			if b[i-1]&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return false, 0, 0, io.ErrUnexpectedEOF
	}
	l := b[i]
	i++
	switch {
	case l < 0x80:
		return constructed, int(l), i, nil
	case l == 0x80:
		return false, 0, 0, Fail(probe.OutcomeProtocolError, "%w: indefinite length, which LDAP does not use", errLDAPMessage)
	case l > 0x84:
		return false, 0, 0, Fail(probe.OutcomeProtocolError, "%w: length of %d octets", errLDAPMessage, l&0x7f)
	}
	k := int(l & 0x7f)
	if i+k > len(b) {
		return false, 0, 0, io.ErrUnexpectedEOF
	}
	for _, c := range b[i : i+k] {
		length = length<<8 | int(c)
	}
	if length < 0 || length > 1<<31-1 {
		return false, 0, 0, Fail(probe.OutcomeProtocolError, "%w: length out of range", errLDAPMessage)
	}
	return constructed, length, i + k, nil
}

// countBERElements walks the BER elements of msg without decoding them and
// fails when they are malformed or more than limit.
func countBERElements(msg []byte, limit int) error {
	ends := make([]int, 0, 16) // ends of the open constructed elements
	ends = append(ends, len(msg))
	count := 0
	for pos := 0; pos < len(msg); {
		for pos == ends[len(ends)-1] {
			ends = ends[:len(ends)-1]
		}
		constructed, length, size, err := berHeader(msg[pos:min(len(msg), ends[len(ends)-1])])
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return Fail(probe.OutcomeProtocolError, "%w: an element's header runs past its parent", errLDAPMessage)
			}
			return err
		}
		end := pos + size + length
		if end > ends[len(ends)-1] {
			return Fail(probe.OutcomeProtocolError, "%w: an element runs past its parent", errLDAPMessage)
		}
		if count++; count > limit {
			return Fail(probe.OutcomeProtocolError, "%w: more than %d BER elements", errLDAPMessage, limit)
		}
		if constructed && length > 0 {
			ends = append(ends, end)
			pos += size
		} else {
			pos = end
		}
	}
	return nil
}
