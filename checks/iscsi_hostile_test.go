package checks

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Hostile or broken peers end in the right outcome, in bounded time.
func TestISCSIHostilePeers(t *testing.T) {
	garbage := []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n")
	hugeHeader := func() []byte {
		h := (&iscsiLoginResp{}).pdu()
		b := h.marshal()
		b[5], b[6], b[7] = 0xff, 0xff, 0xff // 16 MiB announced, nothing follows
		return b
	}
	for _, tc := range []struct {
		name    string
		handle  func(f *fakeTarget)
		timeout time.Duration
		want    probe.Outcome
		errPart string
	}{
		{"garbage", func(f *fakeTarget) {
			f.readLogin()
			f.writeRaw(garbage)
		}, 5 * time.Second, probe.OutcomeProtocolError, "expected a Login Response (opcode 0x23), got opcode 0x08"},
		{"garbage shorter than a header, then close", func(f *fakeTarget) {
			f.readLogin()
			f.writeRaw([]byte("220 mail.example.org ESMTP\r\n"))
		}, 5 * time.Second, probe.OutcomeProtocolError, "unexpected EOF"},
		{"silence", func(f *fakeTarget) {
			f.readLogin()
			f.drain()
		}, 300 * time.Millisecond, probe.OutcomeServiceTimeout, "i/o timeout"},
		{"huge data segment", func(f *fakeTarget) {
			f.readLogin()
			f.writeRaw(hugeHeader())
			f.drain() // keep the connection open: the check must not wait for the data
		}, 5 * time.Second, probe.OutcomeProtocolError, "announces a 16777215-byte data segment, more than the 65536 bytes accepted"},
		{"EOF mid-PDU", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			resp := iscsiLoginResp{ITT: req.ITT, Data: encodeISCSIText([]iscsiKV{{"AuthMethod", "None"}})}
			b := resp.pdu().marshal()
			f.writeRaw(b[:len(b)-4])
		}, 5 * time.Second, probe.OutcomeProtocolError, "unexpected EOF"},
		{"accept, read, close", func(f *fakeTarget) {
			f.readLogin()
		}, 5 * time.Second, probe.OutcomeProtocolError, "closed the connection without answering"},
		{"accept, reset (after connect: a protocol_error)", func(f *fakeTarget) {
			_ = f.c.(*net.TCPConn).SetLinger(0)
		}, 5 * time.Second, probe.OutcomeProtocolError, "connection reset"},
		{"wrong task tag", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			req.ITT++
			f.answer(req, toStage1)
		}, 5 * time.Second, probe.OutcomeProtocolError, "response for task tag"},
		{"reject", func(f *fakeTarget) {
			f.readLogin()
			f.write((&iscsiReject{Reason: 0x04, Data: make([]byte, 48)}).pdu())
		}, 5 * time.Second, probe.OutcomeProtocolError, "the target rejected the request: protocol error"},
		{"bad text", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			f.answer(req, iscsiLoginResp{Transit: true, NSG: 1, Data: []byte("no equals sign\x00")})
		}, 5 * time.Second, probe.OutcomeProtocolError, "has no '='"},
		{"final response without TSIH", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			f.answer(req, iscsiLoginResp{Transit: true, NSG: 3})
		}, 5 * time.Second, probe.OutcomeProtocolError, "without a TSIH"},
		{"CHAP not offered", func(f *fakeTarget) {
			req, _, _ := f.readLogin()
			f.answer(req, iscsiLoginResp{}, iscsiKV{"AuthMethod", "CHAP"})
		}, 5 * time.Second, probe.OutcomeProtocolError, "AuthMethod=CHAP, which was not offered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeISCSI(t, tc.handle)
			r := checkISCSIAt(t, srv.port, tc.timeout, nil)
			srv.wait(t)
			wantOutcome(t, r, tc.want, tc.errPart)
		})
	}
}

// A target that logs in but never answers the logout still passes: the
// logout is best effort and bounded.
func TestISCSILogoutUnanswered(t *testing.T) {
	srv := startFakeISCSI(t, func(f *fakeTarget) {
		if f.tgtLogin() {
			f.drain()
		}
	})
	r := checkISCSIAt(t, srv.port, 30*time.Second, nil)
	srv.wait(t)
	wantOutcome(t, r, probe.OutcomeOK, "")
	wantDetails(t, r, map[string]string{"logout": "no answer"})
}

func TestISCSIRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := checkISCSIAt(t, port, 5*time.Second, nil)
	wantOutcome(t, r, probe.OutcomeRefused, "connection refused")
}

func TestISCSICancel(t *testing.T) {
	got := make(chan struct{})
	srv := startFakeISCSI(t, func(f *fakeTarget) {
		f.readLogin()
		close(got)
		f.drain()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the target holds the login request: the check must
		// return although its deadline is an hour away.
		select {
		case <-got:
			cancel()
		case <-ctx.Done():
		}
	}()
	r := Check(ctx, probe.Target{Host: "127.0.0.1", Port: srv.port, Check: "iscsi", Timeout: time.Hour})
	srv.wait(t)
	if !r.Interrupted || r.Success || !errors.Is(r.Err, probe.ErrInterrupted) {
		t.Errorf("cancelled run: interrupted %v, success %v, error %v; want an interrupted run", r.Interrupted, r.Success, r.Err)
	}
}
