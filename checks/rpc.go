package checks

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/flowprobe/flowprobe/probe"
)

var rpcKind = register(Spec[RPCOptions]{
	Name:        "rpc",
	DefaultPort: 111,
	Transport:   probe.UDP,
	Summary:     "ONC RPC NULL call (rpcbind, NFS): the program and version answer",
	Defaults:    newRPCOptions,
	Hints: []Hint{
		{App: "rpcbind", Options: map[string]any{"program": rpcbindProgram, "version": 2}},
		{App: "rpcbind", Transport: probe.TCP, Options: map[string]any{"program": rpcbindProgram, "version": 2, "transport": "tcp"}},
		{App: "nfs", Options: map[string]any{"program": nfsProgram, "version": 3}},
		{App: "nfs", Transport: probe.TCP, Options: map[string]any{"program": nfsProgram, "version": 3, "transport": "tcp"}},
	},
	Run: runRPC,
})

// Well-known ONC RPC program numbers.
const (
	rpcbindProgram = 100000
	nfsProgram     = 100003
)

// RPCOptions are the options of the rpc check.
type RPCOptions struct {
	TransportOption `yaml:",inline"`
	// Program is the RPC program number (100000 rpcbind, 100003 NFS,
	// 100005 mountd...).
	Program uint32 `yaml:"program"`
	// Version is the program version called.
	Version uint32 `yaml:"version"`
}

func newRPCOptions() *RPCOptions {
	return &RPCOptions{TransportOption: TransportOption{"udp"}, Program: rpcbindProgram, Version: 2}
}

// Validate checks the options.
func (o *RPCOptions) Validate() error {
	var errs []error
	errs = append(errs, o.TransportOption.Validate())
	if o.Program == 0 {
		errs = append(errs, errors.New("program is 0"))
	}
	return errors.Join(errs...)
}

// rpcMaxFragments bounds the record fragments of a reply over TCP.
const rpcMaxFragments = 16

// rpcFraming carries RPC over TCP with record marking (RFC 5531 §11): a
// 4-byte header per fragment, the top bit marking the last.
var rpcFraming = streamFraming{
	wrap: func(req []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, 0x80000000|uint32(len(req))), req...) //nolint:gosec // 40 bytes
	},
	read: func(rd io.Reader) ([]byte, error) {
		var out []byte
		for range rpcMaxFragments {
			var hdr [4]byte
			if _, err := io.ReadFull(rd, hdr[:]); err != nil {
				return nil, err
			}
			h := binary.BigEndian.Uint32(hdr[:])
			n := int(h & 0x7fffffff)
			if len(out)+n > maxReply {
				return nil, Fail(probe.OutcomeProtocolError, "%w (%d)", errTooLarge, len(out)+n)
			}
			frag := make([]byte, n)
			if _, err := io.ReadFull(rd, frag); err != nil {
				return nil, err
			}
			out = append(out, frag...)
			if h&0x80000000 != 0 {
				return out, nil
			}
		}
		return nil, Fail(probe.OutcomeProtocolError, "RPC reply of more than %d fragments", rpcMaxFragments)
	},
}

// rpcNullCall is the call of procedure 0 with AUTH_NONE (RFC 5531 §9).
func rpcNullCall(xid, prog, vers uint32) []byte {
	b := make([]byte, 0, 40)
	for _, v := range []uint32{xid, 0, 2, prog, vers, 0, 0, 0, 0, 0} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// parseRPCReply decodes the reply to call xid; an error says why the call
// did not succeed or the reply is not one.
func parseRPCReply(b []byte, xid, prog, vers uint32) error {
	w := wire{b: b}
	gotXID, mtype, stat := w.u32(), w.u32(), w.u32()
	switch {
	case w.err != nil:
		return fmt.Errorf("not an RPC reply: %w", w.err)
	case gotXID != xid:
		return fmt.Errorf("RPC XID %d does not match the call's %d", gotXID, xid)
	case mtype != 1:
		return fmt.Errorf("RPC message type %d is not a reply", mtype)
	case stat == 1: // MSG_DENIED
		if rs := w.u32(); rs == 0 {
			low, high := w.u32(), w.u32()
			return fmt.Errorf("RPC version mismatch (the server speaks %d-%d)", low, high)
		} else if rs == 1 {
			return fmt.Errorf("RPC authentication error %d", w.u32())
		}
		return errors.New("RPC call denied")
	case stat != 0:
		return fmt.Errorf("RPC reply status %d", stat)
	}
	_ = w.u32()                      // verifier flavor
	w.bytes((int(w.u32()) + 3) &^ 3) // verifier body, padded
	accept := w.u32()
	if w.err != nil {
		return fmt.Errorf("RPC reply: %w", w.err)
	}
	switch accept {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("PROG_UNAVAIL: program %d is not available", prog)
	case 2:
		low, high := w.u32(), w.u32()
		return fmt.Errorf("PROG_MISMATCH: program %d version %d not supported (versions %d-%d)", prog, vers, low, high)
	case 3:
		return errors.New("PROC_UNAVAIL: the NULL procedure is not available")
	case 4:
		return errors.New("GARBAGE_ARGS")
	case 5:
		return errors.New("SYSTEM_ERR")
	}
	return fmt.Errorf("RPC accept status %d", accept)
}

// runRPC calls the NULL procedure of the program and version and judges
// the reply: only SUCCESS proves the service.
func runRPC(ctx context.Context, t probe.Target, o *RPCOptions, r *probe.Result) error {
	xid := newXID()
	port := t.Port
	if port == 0 && o.Program == nfsProgram {
		port = 2049
	}
	req := rpcNullCall(xid, o.Program, o.Version)
	reply, err := exchange(ctx, &t, o.Transport, cmp.Or(port, 111), req, rpcFraming, r)
	if err != nil {
		return err
	}
	r.SetDetail("rpc_program", fmt.Sprintf("%d v%d", o.Program, o.Version))
	if err := parseRPCReply(reply, xid, o.Program, o.Version); err != nil {
		return replyError(r, "rpc", err)
	}
	return nil
}
