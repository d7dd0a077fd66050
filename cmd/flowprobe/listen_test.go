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
	"time"

	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/prometheus/common/promslog"
)

func TestInboundPortsOfARole(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Product("sios-lifekeeper")
	ports, notes, err := inboundPorts(p, "node", nil, nil)
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
	if _, _, err := inboundPorts(p, "nobody", nil, nil); err == nil || !strings.Contains(err.Error(), `no role "nobody"`) {
		t.Errorf("unknown role: %v", err)
	}
	only, _, err := inboundPorts(p, "node", []string{"comm-path"}, nil)
	if err != nil || len(only) != 1 || only[0].port != 7365 {
		t.Errorf("--flow comm-path: %v %v", only, err)
	}
	moved, notes, err := inboundPorts(p, "node", []string{"comm-path", "data-replication"}, map[string]int{"comm-path": 17365, "data-replication": 20002})
	if err != nil || len(moved) != 2 || moved[0].port != 17365 || moved[1].port != 20002 || len(notes) != 0 {
		t.Errorf("--port comm-path=17365 --port data-replication=20002: %v %v %v", moved, notes, err)
	}
	if _, _, err := inboundPorts(p, "node", nil, map[string]int{"gui-web": 1}); err == nil || !strings.Contains(err.Error(), `no flow "gui-web" towards role node`) {
		t.Errorf("--port for a flow not towards the role: %v", err)
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

// freePort picks a TCP port on addr that nothing listens on now.
func freePort(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestListenAnswersCheck runs a responder for a LifeKeeper node on a
// loopback address of its own, with its two flows moved to ports the test
// chose (--port), one of them already taken by another service, and probes
// both with the check `flowprobe check --responder` plans for them.
func TestListenAnswersCheck(t *testing.T) {
	addr := fmt.Sprintf("127.%d.%d.%d", 10+rand.IntN(200), rand.IntN(250), 1+rand.IntN(250))
	taken, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
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
	commPort := freePort(t, addr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &lineWaiter{want: "answering flowprobe probes", seen: make(chan struct{})}
	c := &cli{stdout: &stdout, stderr: stderr}
	done := make(chan int)
	go func() {
		f := &listenFlags{product: "sios-lifekeeper", role: "node", address: addr, duration: 60e9,
			flows: []string{"comm-path", "data-replication"},
			ports: []string{fmt.Sprintf("comm-path=%d", commPort), fmt.Sprintf("data-replication=%d", takenPort)}}
		addLogFlagsDefaults(f)
		done <- runListen(ctx, c, f)
	}()
	select {
	case <-stderr.seen:
	case code := <-done:
		t.Fatalf("listen exited %d early:\n%s", code, stderr.String())
	}

	// What `flowprobe check --responder node` runs for a tcp flow.
	probeResponder := func(port int) (int, string) {
		var out, errOut bytes.Buffer
		code := run([]string{"probe", "tcp", net.JoinHostPort(addr, fmt.Sprint(port)), "--set", "responder=true", "--timeout", "2s", "--output", "json"}, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	commCode, comm := probeResponder(commPort)
	dataCode, data := probeResponder(takenPort)
	cancel()
	if got := <-done; got != exitOK {
		t.Errorf("listen exit %d", got)
	}
	if commCode != exitOK || !strings.Contains(comm, `"responder": "true"`) {
		t.Errorf("comm-path should be ok through the responder (exit %d):\n%s", commCode, comm)
	}
	if dataCode != exitFailed || !strings.Contains(data, "reached something other than the flowprobe responder") {
		t.Errorf("data-replication reached a plain listener, which must not pass as the responder (exit %d):\n%s", dataCode, data)
	}
	logs := stderr.String()
	for _, w := range []string{"port skipped", fmt.Sprintf("port=%d", takenPort), fmt.Sprintf(`msg="probe received" protocol=tcp port=%d`, commPort)} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs lack %q:\n%s", w, logs)
		}
	}
	sum := stdout.String()
	for _, w := range []string{fmt.Sprintf("tcp/%d", commPort), "1 probes (1 from flowprobe) from ", fmt.Sprintf("tcp/%d", takenPort), "not opened", "1 ports skipped"} {
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
		{[]string{"listen", "--product", "sios-lifekeeper"}, "give --config.file FILE, or --product and --role"},
		{[]string{"listen", "--config.file", "testdata/plan-sios.yml", "--product", "sios-lifekeeper"}, "--product, --flow and --port go without a config"},
		{[]string{"listen", "--product", "nope", "--role", "node"}, `unknown product "nope"`},
		{[]string{"listen", "--product", "sios-lifekeeper", "--role", "node", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"listen", "--product", "sios-lifekeeper", "--role", "node", "--flow", "nope"}, `no flow "nope"`},
		{[]string{"listen", "--product", "sios-lifekeeper", "--role", "node", "--port", "comm-path=0"}, `--port "comm-path=0": want FLOW=PORT`},
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

// A UDP flood from many (spoofable) sources: listen remembers at most
// maxSources of them, counts the rest as other, and logs only the first
// probes of each source one by one, then one summary line.
func TestListenBoundsWhatAFloodCosts(t *testing.T) {
	const sources, perSource, remember = 300, 4, 40
	addr := "127.0.0.1"
	pc, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close() // pick and check: listen reports the port as skipped if it is taken meanwhile

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &lineWaiter{want: "answering flowprobe probes", seen: make(chan struct{})}
	c := &cli{stdout: &stdout, stderr: stderr}
	done := make(chan int)
	go func() {
		f := &listenFlags{product: "citrix-app-layering", role: "ntp-server", address: addr, duration: 60e9,
			flows: []string{"key-ntp"}, ports: []string{fmt.Sprintf("key-ntp=%d", port)}, maxSources: remember}
		addLogFlagsDefaults(f)
		done <- runListen(ctx, c, f)
	}()
	select {
	case <-stderr.seen:
	case code := <-done:
		t.Fatalf("listen exited %d early:\n%s", code, stderr.String())
	}
	// Each source sends junk, then a hello, and waits for its answer: the
	// responder reads its socket in order, so the answer means every
	// datagram before it was counted, and the socket buffer never overflows.
	dst := &net.UDPAddr{IP: net.ParseIP(addr), Port: port}
	hello := []byte("FLOWPROBE/1 HELLO 0123456789abcdef0123456789abcdef " + strings.Repeat(".", 160) + "\n")
	buf := make([]byte, 512)
	for i := range sources {
		src := &net.UDPAddr{IP: net.IPv4(127, 0, byte(1+i/250), byte(1+i%250))}
		conn, err := net.DialUDP("udp", src, dst)
		if err != nil {
			t.Fatal(err)
		}
		for range perSource - 1 {
			if _, err := conn.Write([]byte("not a hello\n")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Write(hello); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil || !strings.HasPrefix(string(buf[:n]), "FLOWPROBE/1 ACK") {
			t.Fatalf("source %v: no answer to its hello: %q %v", src, buf[:n], err)
		}
	}
	cancel()
	if got := <-done; got != exitOK {
		t.Errorf("listen exit %d", got)
	}

	logs := stderr.String()
	total := sources * perSource
	logged := strings.Count(logs, `msg="probe received"`)
	if want := remember * logPerSource; logged != want {
		t.Errorf("%d probes logged one by one, want %d (the first %d of each of %d remembered sources)", logged, want, logPerSource, remember)
	}
	if !strings.Contains(logs, fmt.Sprintf(`msg="more probes received, not logged one by one" probes=%d sources_remembered=%d`, total-logged, remember)) {
		t.Errorf("logs lack the summary of the %d probes not logged:\n%s", total-logged, logs[max(0, len(logs)-2000):])
	}
	sum := stdout.String()
	other := (sources - remember) * perSource
	for _, w := range []string{fmt.Sprintf("%d probes (%d from flowprobe) from ", total, sources), "and 20 more sources",
		fmt.Sprintf("; %d probes from sources beyond the first %d not told apart", other, remember)} {
		if !strings.Contains(sum, w) {
			t.Errorf("summary lacks %q:\n%s", w, sum)
		}
	}
}
