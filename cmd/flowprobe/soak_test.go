package main

// The soak test runs the daemon's own pieces (site planning, the scheduler
// with the real checks, the exporter) for thousands of checks against
// in-process peers on 127.0.0.1 that answer, refuse, stay silent, send
// garbage or reset, reloading between two configs all the while. It is
// skipped with -short; ./test.sh runs it. FLOWPROBE_SOAK_CHECKS sets the
// number of checks (default 3000).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/exporter"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/scheduler"
)

// peer is a TCP server on 127.0.0.1:0 that serves every connection with
// handle and counts the connections still being served.
type peer struct {
	ln     net.Listener
	mu     sync.Mutex
	active int
	idle   *sync.Cond
	wg     sync.WaitGroup
}

func startPeer(t *testing.T, handle func(net.Conn)) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{ln: ln}
	p.idle = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.active++
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer func() {
					p.mu.Lock()
					p.active--
					p.idle.Broadcast()
					p.mu.Unlock()
				}()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a failsafe, never reached by a working client
				handle(c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *peer) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// waitIdle blocks until no connection is being served; the clients closed
// theirs, so every handler ends.
func (p *peer) waitIdle() {
	p.mu.Lock()
	for p.active > 0 {
		p.idle.Wait()
	}
	p.mu.Unlock()
}

// serveHTTP reads a request head (bounded) and answers 200.
func serveHTTP(c net.Conn) {
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 1024)
	for len(buf) < cap(buf) && !strings.Contains(string(buf), "\r\n\r\n") {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return
		}
	}
	_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}

// drain reads until the client closes: a peer that accepts and says nothing.
func drain(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

func garbage(c net.Conn) {
	_, _ = c.Write([]byte("\x00\xff\x16\x03 not what you asked for\r\n\r\n\x15\x03\x03\x00\x02"))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<16))
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // Close sends RST
	}
}

// selfSignedTLS returns a server certificate for 127.0.0.1 that is its own
// CA, and writes that CA to caFile.
func selfSignedTLS(t *testing.T, caFile string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "soak"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// resources are what a leak shows in.
type resources struct {
	goroutines, fds int
	heap            uint64
}

func measure(t *testing.T) resources {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return resources{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapAlloc}
}

// runCounter counts recorded runs; wait blocks until a count is reached.
type runCounter struct {
	n    atomic.Int64
	tick chan struct{}
}

func (r *runCounter) after(scheduler.Status) {
	r.n.Add(1)
	select {
	case r.tick <- struct{}{}:
	default:
	}
}

func (r *runCounter) wait(t *testing.T, n int64) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d runs", n), func() bool { return r.n.Load() >= n })
}

// waitFor blocks until done, checked after every recorded run.
func (r *runCounter) waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	failsafe := time.NewTimer(2 * time.Minute)
	defer failsafe.Stop()
	for !done() {
		select {
		case <-r.tick:
		case <-failsafe.C:
			t.Fatalf("waiting for %s: %d runs recorded", what, r.n.Load())
		}
	}
}

// soakFlow is one extra flow of the soak site.
type soakFlow struct {
	id, check string
	port      int
	options   string // YAML flow mapping, or ""
}

func soakConfig(flows []soakFlow, variant bool) string {
	var b strings.Builder
	b.WriteString("products:\n  - name: sios-lifekeeper\n    self: node\n    interval: 100ms\n    timeout: 50ms\n    only: [")
	var ids []string
	for _, f := range flows {
		if variant && f.id == "ssh-reset" {
			continue // removed in the variant
		}
		ids = append(ids, f.id)
	}
	b.WriteString(strings.Join(ids, ", ") + "]\n    extra_flows:\n")
	for _, f := range flows {
		fmt.Fprintf(&b, "      - {id: %s, source: node, hostname: 127.0.0.1, protocol: tcp, ports: [%d], check: %s", f.id, f.port, f.check)
		if f.options != "" {
			fmt.Fprintf(&b, ", options: %s", f.options)
		}
		if variant && f.id == "tcp-silent" {
			b.WriteString(", timeout: 40ms") // changed in the variant
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// series returns the flowprobe_check_success series of a scrape, by flow.
func successSeries(t *testing.T, exp *exporter.Exporter) map[string]string {
	t.Helper()
	rec := httptest.NewRecorder()
	exp.Handler(exporter.HandlerOptions{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]string{}
	for line := range strings.SplitSeq(rec.Body.String(), "\n") {
		if !strings.HasPrefix(line, "flowprobe_check_success{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `flow="`)
		flow, _, _ := strings.Cut(rest, `"`)
		out[flow] = line[:strings.LastIndexByte(line, ' ')]
	}
	return out
}

func TestSoakRealChecksAndReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test; runs without -short (./test.sh)")
	}
	total := int64(3000)
	if s := os.Getenv("FLOWPROBE_SOAK_CHECKS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			t.Fatalf("FLOWPROBE_SOAK_CHECKS=%q: want a positive count", s)
		}
		total = n
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	cert := selfSignedTLS(t, caFile)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	refusedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedPort := refusedLn.Addr().(*net.TCPAddr).Port
	refusedLn.Close() // nothing listens there now: connections are refused

	httpOK := startPeer(t, serveHTTP)
	tlsOK := startPeer(t, func(c net.Conn) {
		tc := tls.Server(c, tlsConfig)
		if tc.Handshake() == nil {
			drain(tc)
		}
	})
	silent, junk, resetter := startPeer(t, drain), startPeer(t, garbage), startPeer(t, reset)
	peers := []*peer{httpOK, tlsOK, silent, junk, resetter}
	ca := fmt.Sprintf("{ca_file: %q}", caFile)
	flows := []soakFlow{
		{"tcp-ok", "tcp", httpOK.port(), ""}, {"tcp-refused", "tcp", refusedPort, ""},
		{"tcp-silent", "tcp", silent.port(), ""}, {"tcp-garbage", "tcp", junk.port(), ""}, {"tcp-reset", "tcp", resetter.port(), ""},
		{"http-ok", "http", httpOK.port(), ""}, {"http-refused", "http", refusedPort, ""},
		{"http-silent", "http", silent.port(), ""}, {"http-garbage", "http", junk.port(), ""}, {"http-reset", "http", resetter.port(), ""},
		{"tls-ok", "tls", tlsOK.port(), ca}, {"tls-silent", "tls", silent.port(), ca},
		{"tls-garbage", "tls", junk.port(), ca}, {"tls-reset", "tls", resetter.port(), ca},
		{"ssh-silent", "ssh", silent.port(), ""}, {"ssh-garbage", "ssh", junk.port(), ""}, {"ssh-reset", "ssh", resetter.port(), ""},
	}
	changed := map[string]bool{"tcp-silent": true, "ssh-reset": true}
	cfgFile := filepath.Join(dir, "site.yml")
	write := func(variant bool) {
		if err := os.WriteFile(cfgFile, []byte(soakConfig(flows, variant)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(false)
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}

	base := measure(t)
	runs := &runCounter{tick: make(chan struct{}, 1)}
	d := &daemon{log: slog.New(slog.DiscardHandler), load: func() (*planned, error) { return loadSite(cat, cfgFile) }}
	d.exp = exporter.New(exporter.Options{})
	d.sched = scheduler.New(scheduler.Config{}, checks.Dispatcher, scheduler.Options{Sink: storeSink{s: d.exp.Store(), after: runs.after}})
	p, err := d.prepare()
	if err != nil {
		t.Fatal(err)
	}
	d.apply(p)
	runs.waitFor(t, "every target's first run", func() bool {
		_, done, total := d.exp.Store().Ready()
		return done == len(flows) && total == len(flows)
	})
	outcomes := map[string]string{}
	for _, e := range d.exp.Store().Snapshot() {
		outcomes[e.Target.Flow] = e.Result.Outcome.String()
	}
	for flow, want := range map[string]string{"tcp-ok": "ok", "http-ok": "ok", "tls-ok": "ok", "tcp-refused": "refused", "tls-silent": "service_timeout", "ssh-reset": "protocol_error"} {
		if outcomes[flow] != want {
			t.Errorf("%s: %s, want %s", flow, outcomes[flow], want)
		}
	}

	const reloadEvery = 250
	variant, reloads := false, 0
	for next := runs.n.Load() + reloadEvery; next < total; next += reloadEvery {
		runs.wait(t, next)
		before := map[string]uint64{}
		for _, e := range d.exp.Store().Snapshot() {
			before[e.Target.Flow] = e.Runs
		}
		seriesBefore := successSeries(t, d.exp)
		variant = !variant
		write(variant)
		if err := d.reload(); err != nil {
			t.Fatal(err)
		}
		reloads++
		after := map[string]uint64{}
		for _, e := range d.exp.Store().Snapshot() {
			after[e.Target.Flow] = e.Runs
		}
		seriesAfter := successSeries(t, d.exp)
		for flow, n := range before {
			if changed[flow] {
				continue
			}
			if after[flow] < n {
				t.Fatalf("reload %d: %s ran %d times before the reload, %d after: its state was lost", reloads, flow, n, after[flow])
			}
			if s, ok := seriesBefore[flow]; ok && seriesAfter[flow] != s {
				t.Fatalf("reload %d: series %s vanished", reloads, s)
			}
		}
	}
	runs.wait(t, total)
	d.sched.Close()
	for _, p := range peers {
		p.waitIdle()
	}

	// Every goroutine of the scheduler, the checks and the peers' handlers
	// has ended or is about to: a bounded wait for the last to return.
	var end resources
	for range 1000 {
		if end = measure(t); end.goroutines <= base.goroutines && end.fds <= base.fds {
			break
		}
		runtime.Gosched()
	}
	t.Logf("%d checks, %d reloads: goroutines %d → %d, fds %d → %d, heap %d → %d KiB",
		runs.n.Load(), reloads, base.goroutines, end.goroutines, base.fds, end.fds, base.heap>>10, end.heap>>10)
	if end.goroutines > base.goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines %d, baseline %d:\n%s", end.goroutines, base.goroutines, buf[:runtime.Stack(buf, true)])
	}
	if end.fds > base.fds {
		t.Errorf("open fds %d, baseline %d", end.fds, base.fds)
	}
	if end.heap > base.heap+64<<20 {
		t.Errorf("heap %d KiB, baseline %d KiB: more than 64 MiB kept", end.heap>>10, base.heap>>10)
	}
}
