package checks

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Helpers shared by the tests of the ldap, snmp, http and ssh checks.

// appTimeout bounds every check of these tests; silent peers end in it.
const appTimeout = time.Second

// appRun decodes raw options for kind and runs the check against port on
// 127.0.0.1.
func appRun(t *testing.T, kind string, port int, raw map[string]any) probe.Result {
	t.Helper()
	opts, err := Decode(kind, raw)
	if err != nil {
		t.Fatalf("options %v: %v", raw, err)
	}
	k, _ := Lookup(kind)
	return Check(context.Background(), probe.Target{
		Host: "127.0.0.1", Port: port, Protocol: k.Transport, Check: kind,
		Options: opts, Timeout: appTimeout,
	})
}

func appWant(t *testing.T, r probe.Result, want probe.Outcome) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %s (%v), want %s; details %v", r.Outcome, r.Err, want, r.Details)
	}
}

// appTCPPeer serves each connection to a loopback listener with serve and
// returns the port. Connections and listener close when the test ends.
func appTCPPeer(t *testing.T, serve func(c net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// appClosedTCPPort is a loopback port nothing listens on.
func appClosedTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// appSilent reads whatever comes until the peer goes away, and says
// nothing.
func appSilent(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// appFile writes content to a file of the test and returns its path.
func appFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sshPeer answers with lines after reading the client's identification.
func sshPeer(t *testing.T, got chan<- string, lines ...string) int {
	return appTCPPeer(t, func(c net.Conn) {
		for _, l := range lines {
			if _, err := io.WriteString(c, l); err != nil {
				return
			}
		}
		ident, _ := bufio.NewReader(c).ReadString('\n')
		if got != nil {
			got <- ident
		}
		appSilent(c)
	})
}

func TestSSHBanner(t *testing.T) {
	got := make(chan string, 1)
	port := sshPeer(t, got, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
	r := appRun(t, "ssh", port, map[string]any{"expect": "^SSH-2\\.0-OpenSSH_9"})
	appWant(t, r, probe.OutcomeOK)
	want := map[string]string{
		"banner":           "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3",
		"proto_version":    "2.0",
		"software_version": "OpenSSH_9.2p1",
	}
	for k, v := range want {
		if r.Details[k] != v {
			t.Errorf("details[%s] = %q, want %q", k, r.Details[k], v)
		}
	}
	if r.Phases[probe.PhaseConnect] <= 0 || r.Phases[probe.PhaseRequest] <= 0 {
		t.Errorf("phases %v", r.Phases)
	}
	if ident := <-got; ident != sshIdent {
		t.Errorf("the server got %q, want the check's identification %q", ident, sshIdent)
	}
}

func TestSSHLinesBeforeBanner(t *testing.T) {
	port := sshPeer(t, nil, "Welcome to example.org\r\n", "authorised use only\n", "SSH-1.99-Cisco-1.25\r\n")
	r := appRun(t, "ssh", port, nil)
	appWant(t, r, probe.OutcomeOK)
	if r.Details["banner"] != "SSH-1.99-Cisco-1.25" {
		t.Errorf("banner %q", r.Details["banner"])
	}
}

func TestSSHNotSSH(t *testing.T) {
	cases := map[string]struct {
		serve  func(c net.Conn)
		opts   map[string]any
		reason string
	}{
		"expect does not match": {
			serve: func(c net.Conn) { io.WriteString(c, "SSH-2.0-dropbear_2022.83\r\n"); appSilent(c) },
			opts:  map[string]any{"expect": "OpenSSH"}, reason: "banner does not match expect",
		},
		"protocol 1 only": {
			serve:  func(c net.Conn) { io.WriteString(c, "SSH-1.5-OldServer\r\n"); appSilent(c) },
			reason: "server speaks SSH protocol 1.5 only",
		},
		"http server": {
			serve: func(c net.Conn) {
				bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			},
		},
		"closes without a banner": {serve: func(c net.Conn) { bufio.NewReader(c).ReadString('\n') }},
		"control characters in the banner": {
			serve: func(c net.Conn) { io.WriteString(c, "SSH-2.0-x\x1b[31m\r\n"); appSilent(c) },
		},
		"endless line": {
			serve: func(c net.Conn) {
				chunk := strings.Repeat("A", 4096)
				for range 1024 { // 4 MiB at most
					if _, err := io.WriteString(c, chunk); err != nil {
						return
					}
				}
			},
		},
		"endless short lines": {
			serve: func(c net.Conn) {
				for range 100000 {
					if _, err := io.WriteString(c, "hello\r\n"); err != nil {
						return
					}
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := appRun(t, "ssh", appTCPPeer(t, tc.serve), tc.opts)
			appWant(t, r, probe.OutcomeProtocolError)
			if tc.reason != "" && r.Details[probe.DetailReason] != tc.reason {
				t.Errorf("reason %q, want %q", r.Details[probe.DetailReason], tc.reason)
			}
		})
	}
}

func TestSSHSilentAndClosed(t *testing.T) {
	appWant(t, appRun(t, "ssh", appTCPPeer(t, appSilent), nil), probe.OutcomeServiceTimeout)
	// A banner that stops before its line ends is silence too.
	half := appTCPPeer(t, func(c net.Conn) { io.WriteString(c, "SSH-2.0-Open"); appSilent(c) })
	appWant(t, appRun(t, "ssh", half, nil), probe.OutcomeServiceTimeout)
	appWant(t, appRun(t, "ssh", appClosedTCPPort(t), nil), probe.OutcomeRefused)
}

func TestSSHOptions(t *testing.T) {
	if _, err := Decode("ssh", map[string]any{"expect": "("}); err == nil {
		t.Error("a bad expect regexp was accepted")
	}
	if _, err := Decode("ssh", map[string]any{"banner": "x"}); err == nil {
		t.Error("an unknown option was accepted")
	}
}
