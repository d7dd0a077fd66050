//go:build lab

package checks

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// relayConn is one connection through a captureRelay: the bytes the
// client sent, complete once done is closed.
type relayConn struct {
	sent bytes.Buffer
	done chan struct{}
}

// captureRelay listens on 127.0.0.1:0 and forwards every connection to
// the lab's slapd, keeping what each client sent, so a test sees the
// bytes that reached the server.
type captureRelay struct {
	ln    net.Listener
	conns chan *relayConn
}

func startCaptureRelay(t *testing.T, upstream string) *captureRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &captureRelay{ln: ln, conns: make(chan *relayConn, 8)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			rc := &relayConn{done: make(chan struct{})}
			r.conns <- rc
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.forward(client, upstream, rc)
			}()
		}
	}()
	return r
}

// forward copies client → server, capturing every byte the client sent
// even when the server is gone, and server → client; the deadline bounds
// both.
func (r *captureRelay) forward(client net.Conn, upstream string, rc *relayConn) {
	defer close(rc.done)
	defer client.Close()
	deadline := time.Now().Add(30 * time.Second)
	_ = client.SetDeadline(deadline)
	server, err := net.DialTimeout("tcp", upstream, 10*time.Second)
	if err != nil {
		_, _ = io.Copy(&rc.sent, client)
		return
	}
	defer server.Close()
	_ = server.SetDeadline(deadline)
	back := make(chan struct{})
	go func() {
		defer close(back)
		_, _ = io.Copy(client, server)
		_ = client.(*net.TCPConn).CloseWrite() // the client sees the server's end
	}()
	_, _ = io.Copy(server, io.TeeReader(client, &rc.sent))
	_, _ = io.Copy(&rc.sent, client) // what the client sent after the server went away
	server.Close()
	<-back
}

// next is the relay's next connection, fully captured. With want it
// waits for one; without, it returns one only if it was already accepted
// (nil otherwise).
func (r *captureRelay) next(t *testing.T, want bool) *relayConn {
	t.Helper()
	var rc *relayConn
	if want {
		select {
		case rc = <-r.conns:
		case <-time.After(time.Minute):
			t.Fatal("no connection reached the relay")
		}
	} else {
		select {
		case rc = <-r.conns:
		default:
			return nil
		}
	}
	select {
	case <-rc.done:
		return rc
	case <-time.After(time.Minute):
		t.Fatal("the relayed connection did not end")
	}
	return nil
}

func (r *captureRelay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// TestLabLDAPPlaintextPassword: no password leaves the process over plain
// LDAP unless the flow opts in with allow_plaintext_bind, and a flow that
// must be blocked sends nothing beyond the connect even when it is
// configured with credentials and the opt-in. The relay in front of the
// lab's slapd sees every byte the check sent.
func TestLabLDAPPlaintextPassword(t *testing.T) {
	testlab.Require(t)
	pwFile := testlab.File("ldap-admin.pw")
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))
	if len(password) < 4 {
		t.Fatalf("the lab's admin password %q is too short to look for", password)
	}
	relay := startCaptureRelay(t, testlab.Addr(testlab.LDAPPort))
	creds := func(optIn bool) map[string]any {
		raw := map[string]any{"bind_dn": testlab.LDAPAdminDN, "password_file": pwFile}
		if optIn {
			raw["allow_plaintext_bind"] = true
		}
		return raw
	}
	run := func(t *testing.T, raw map[string]any, expect probe.Expect) (probe.Result, *relayConn) {
		t.Helper()
		opts, err := Decode("ldap", raw)
		if err != nil {
			t.Fatalf("options %v: %v", raw, err)
		}
		tg := probe.Target{Host: "127.0.0.1", Port: relay.port(), Protocol: probe.TCP, Check: "ldap",
			Options: opts, Timeout: 10 * time.Second, Expect: expect}
		r := Check(context.Background(), tg)
		return r, relay.next(t, true)
	}

	t.Run("without the opt-in the config is refused", func(t *testing.T) {
		_, err := Decode("ldap", creds(false))
		if err == nil || !strings.Contains(err.Error(), "allow_plaintext_bind") {
			t.Fatalf("bind_dn over plain LDAP without allow_plaintext_bind: error %v, want one naming allow_plaintext_bind", err)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("the config error shows the password: %v", err)
		}
		if rc := relay.next(t, false); rc != nil {
			t.Errorf("a refused config reached the server with %q", rc.sent.String())
		}
	})

	t.Run("with the opt-in the bind works in clear text", func(t *testing.T) {
		r, rc := run(t, creds(true), probe.ExpectAllow)
		labWant(t, r, probe.OutcomeOK)
		if !bytes.Contains(rc.sent.Bytes(), []byte(password)) {
			t.Errorf("the relay did not see the password the opted-in plain bind sends: the capture proves nothing")
		}
	})

	t.Run("a deny flow with credentials sends nothing", func(t *testing.T) {
		r, rc := run(t, creds(true), probe.ExpectDeny)
		if r.Outcome != probe.OutcomeOK || r.Success || !r.Connected || r.Details["deny_probe"] != "connect only" {
			t.Errorf("deny flow through an open relay: outcome %s success %v connected %v details %v; want a connect-only violation",
				r.Outcome, r.Success, r.Connected, r.Details)
		}
		if rc.sent.Len() != 0 {
			t.Errorf("the deny flow sent %d bytes (%q); want none", rc.sent.Len(), rc.sent.String())
		}
		if bytes.Contains(rc.sent.Bytes(), []byte(password)) {
			t.Error("the deny flow sent the password")
		}
	})
}
