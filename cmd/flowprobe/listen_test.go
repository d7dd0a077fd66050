package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/prometheus/common/promslog"
)

func TestInboundPortsOfARole(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Product("sios-lifekeeper")
	ports, notes, err := inboundPorts(p, "node", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, lp := range ports {
		got = append(got, fmt.Sprintf("%s/%d", lp.proto, lp.port))
	}
	want := "tcp/22 tcp/81 tcp/82 tcp/778 tcp/779 tcp/5000 tcp/5110 tcp/7365 tcp/10001"
	if strings.Join(got, " ") != want {
		t.Errorf("ports = %s, want %s", strings.Join(got, " "), want)
	}
	joined := strings.Join(notes, "\n")
	for _, w := range []string{"range 10001-65535, opening its first port 10001", "ephemeral ports cannot be opened", "icmp needs no listener"} {
		if !strings.Contains(joined, w) {
			t.Errorf("notes lack %q:\n%s", w, joined)
		}
	}
	if _, _, err := inboundPorts(p, "nobody", nil); err == nil || !strings.Contains(err.Error(), `no role "nobody"`) {
		t.Errorf("unknown role: %v", err)
	}
	only, _, err := inboundPorts(p, "node", []string{"comm-path"})
	if err != nil || len(only) != 1 || only[0].port != 7365 {
		t.Errorf("--flow comm-path: %v %v", only, err)
	}
}

// lineWaiter is a concurrency-safe writer that signals when a text appears.
type lineWaiter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWaiter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(b)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestListenAnswersCheck runs a responder for a LifeKeeper node on a
// loopback address of its own and proves the node's flows against it with
// `flowprobe check --responder`, with one port already taken.
func TestListenAnswersCheck(t *testing.T) {
	addr := fmt.Sprintf("127.%d.%d.%d", 10+rand.IntN(200), rand.IntN(250), 1+rand.IntN(250))
	taken, err := net.Listen("tcp", net.JoinHostPort(addr, "10001"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	go func() { // another service, already on the port
		for {
			c, err := taken.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Close()
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &lineWaiter{want: "answering flowprobe probes", seen: make(chan struct{})}
	c := &cli{stdout: &stdout, stderr: stderr}
	done := make(chan int)
	go func() {
		// Ports above 1023 only, so the test runs without root too.
		f := &listenFlags{product: "sios-lifekeeper", role: "node", address: addr, duration: 60e9,
			flows: []string{"comm-path", "data-replication"}}
		addLogFlagsDefaults(f)
		done <- runListen(ctx, c, f)
	}()
	select {
	case <-stderr.seen:
	case code := <-done:
		t.Fatalf("listen exited %d early:\n%s", code, stderr.String())
	}

	var out, errOut bytes.Buffer
	code := run([]string{"check", "--product", "sios-lifekeeper", "--self", "node", "--host", "node=" + addr,
		"--responder", "node", "--flow", "comm-path", "--flow", "data-replication", "--timeout", "2s", "--output", "json"}, &out, &errOut)
	cancel()
	if got := <-done; got != exitOK {
		t.Errorf("listen exit %d", got)
	}
	if code != exitFailed {
		t.Errorf("check exit %d, want 1 (10001 is held by something else)\n%s%s", code, out.String(), errOut.String())
	}
	js := out.String()
	if !strings.Contains(js, `"flow": "comm-path"`) || !strings.Contains(js, `"responder": "true"`) {
		t.Errorf("comm-path should be ok through the responder:\n%s", js)
	}
	if !strings.Contains(js, "reached something other than the flowprobe responder") {
		t.Errorf("data-replication reached a plain listener, which must not pass as the responder:\n%s", js)
	}
	logs := stderr.String()
	for _, w := range []string{"port skipped", "port=10001", `msg="probe received" protocol=tcp port=7365`} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs lack %q:\n%s", w, logs)
		}
	}
	sum := stdout.String()
	for _, w := range []string{"tcp/7365", "1 probes (1 from flowprobe) from ", "tcp/10001", "not opened", "1 ports skipped"} {
		if !strings.Contains(sum, w) {
			t.Errorf("summary lacks %q:\n%s", w, sum)
		}
	}
}

func TestListenUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"listen", "--product", "sios-lifekeeper"}, "'--role' not provided"},
		{[]string{"listen", "--product", "nope", "--role", "node"}, `unknown product "nope"`},
		{[]string{"listen", "--product", "sios-lifekeeper", "--role", "node", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"listen", "--product", "sios-lifekeeper", "--role", "node", "--flow", "nope"}, `no flow "nope"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.want, stderr.String())
		}
	}
}

// addLogFlagsDefaults gives flags built without kingpin the defaults that
// addLogFlags would set.
func addLogFlagsDefaults(f *listenFlags) {
	f.log = &promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat()}
	_ = f.log.Level.Set("info")
	_ = f.log.Format.Set("logfmt")
}
