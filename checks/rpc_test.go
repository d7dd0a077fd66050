package checks

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// testRPCServer answers a call as RFC 5531 §9 lays out, for a host that
// runs rpcbind versions 2-4 and NFS version 3 only.
func testRPCServer(req []byte) []byte {
	w := wire{b: req}
	xid, mtype, rpcvers, prog, vers := w.u32(), w.u32(), w.u32(), w.u32(), w.u32()
	if w.err != nil || mtype != 0 {
		return nil
	}
	reply := func(words ...uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, xid)
		b = binary.BigEndian.AppendUint32(b, 1)
		for _, v := range words {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	switch {
	case rpcvers != 2:
		return reply(1, 0, 2, 2) // MSG_DENIED, RPC_MISMATCH 2-2
	case prog == rpcbindProgram && vers >= 2 && vers <= 4, prog == nfsProgram && vers == 3:
		return reply(0, 0, 0, 0) // accepted, AUTH_NONE verifier, SUCCESS
	case prog == nfsProgram:
		return reply(0, 0, 0, 2, 3, 3) // PROG_MISMATCH 3-3
	}
	return reply(0, 0, 0, 1) // PROG_UNAVAIL
}

func TestRPCCheck(t *testing.T) {
	server := loopbackUDPPeer(t, testRPCServer)
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return garbage })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return req })
	denied := loopbackUDPPeer(t, func(req []byte) []byte {
		return append(req[:4:4], 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1)
	})
	// Over TCP the reply comes in two record fragments.
	tcpServer := framedTCPPeer(t, rpcFraming.read, func(req []byte) []byte {
		b := testRPCServer(req)
		out := binary.BigEndian.AppendUint32(nil, 8)
		out = append(out, b[:8]...)
		out = binary.BigEndian.AppendUint32(out, 0x80000000|uint32(len(b)-8))
		return append(out, b[8:]...)
	})
	tcpHuge := loopbackTCPPeer(t, func(c net.Conn) {
		_, _ = io.ReadFull(c, make([]byte, 44))
		_, _ = c.Write([]byte{0x7f, 0xff, 0xff, 0xff})
	})
	tcpHangUp := loopbackTCPPeer(t, hangUpServe)
	nfs3 := map[string]any{"program": nfsProgram, "version": 3}

	runExchangeCases(t, "rpc", []exchangeCase{
		{name: "rpcbind v2", port: server, want: probe.OutcomeOK, details: map[string]string{"rpc_program": "100000 v2"}},
		{name: "nfs v3", port: server, raw: nfs3, want: probe.OutcomeOK},
		{name: "nfs v4 not served", port: server, raw: map[string]any{"program": nfsProgram, "version": 4}, want: probe.OutcomeProtocolError,
			reason: "PROG_MISMATCH: program 100003 version 4 not supported (versions 3-3)"},
		{name: "program not registered", port: server, raw: map[string]any{"program": 100005, "version": 3}, want: probe.OutcomeProtocolError,
			reason: "PROG_UNAVAIL: program 100005 is not available"},
		{name: "authentication error", port: denied, want: probe.OutcomeProtocolError, reason: "RPC authentication error 1"},
		{name: "over tcp, two fragments", port: tcpServer, proto: probe.TCP, raw: map[string]any{"transport": "tcp"}, want: probe.OutcomeOK},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "does not match the call's"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "does not match the call's"},
		{name: "echoed call", port: echo, want: probe.OutcomeProtocolError, reason: "RPC message type 0 is not a reply"},
		{name: "tcp reply too large", port: tcpHuge, proto: probe.TCP, raw: map[string]any{"transport": "tcp"}, want: probe.OutcomeProtocolError, reason: "announces more than"},
		{name: "tcp hang-up", port: tcpHangUp, proto: probe.TCP, raw: map[string]any{"transport": "tcp"}, want: probe.OutcomeProtocolError, reason: "reset after connect"},
	})
	if _, err := Decode("rpc", map[string]any{"program": 0}); err == nil {
		t.Error("program 0 decoded")
	}
}

func FuzzParseRPCReply(f *testing.F) {
	seedCorpus(f, "FuzzParseRPCReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := parseRPCReply(b, 7, nfsProgram, 3); err == nil && len(b) < 24 {
			t.Errorf("accepted a %d-byte reply", len(b))
		}
	})
}
