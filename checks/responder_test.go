package checks

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

func TestResponderProtocolParsing(t *testing.T) {
	nonce := "0123456789abcdef0123456789abcdef"
	hello := responderHello(nonce, 0)
	if string(hello) != "FLOWPROBE/1 HELLO "+nonce+"\n" {
		t.Errorf("hello %q", hello)
	}
	if got, ok := parseHello(hello); !ok || got != nonce {
		t.Errorf("parseHello(own hello) = %q, %v", got, ok)
	}
	padded := responderHello(nonce, udpHelloSize)
	if len(padded) != udpHelloSize {
		t.Errorf("padded hello has %d bytes, want %d", len(padded), udpHelloSize)
	}
	if got, ok := parseHello(padded); !ok || got != nonce {
		t.Errorf("parseHello(padded) = %q, %v", got, ok)
	}
	for _, bad := range []string{
		"", "FLOWPROBE/1 HELLO\n", "FLOWPROBE/2 HELLO " + nonce + "\n", "flowprobe/1 hello " + nonce + "\n",
		"FLOWPROBE/1 HELLO short\n", "FLOWPROBE/1 HELLO " + strings.ToUpper(nonce) + "\n",
		"FLOWPROBE/1 HELLO " + strings.Repeat("a", 65) + "\n", "GET / HTTP/1.0\r\n",
	} {
		if _, ok := parseHello([]byte(bad)); ok {
			t.Errorf("parseHello(%q) accepted", bad)
		}
	}

	acks := []struct {
		line    string
		ok      bool
		name    string
		errText string
	}{
		{"FLOWPROBE/1 ACK " + nonce + " db01 tcp/389 192.0.2.7:40000\n", true, "db01", ""},
		{"FLOWPROBE/1 ACK " + nonce + "\n", true, "", ""},
		{"FLOWPROBE/1 ACK " + nonce + " db01 tcp/389 192.0.2.7:40000 future-field\r\n", true, "db01", ""},
		{"FLOWPROBE/1 ACK ffffffffffffffffffffffffffffffff db01\n", false, "", ""},
		{"FLOWPROBE/1 HELLO " + nonce + "\n", false, "", ""},
		{"FLOWPROBE/1 ERR expected HELLO\n", false, "", "expected HELLO"},
		{"SSH-2.0-OpenSSH_9.2\r\n", false, "", ""},
	}
	for _, a := range acks {
		ack, ok, errText := parseResponderAck([]byte(a.line), nonce)
		if ok != a.ok || ack.name != a.name || errText != a.errText {
			t.Errorf("parseResponderAck(%q) = %+v, %v, %q", a.line, ack, ok, errText)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"db01.example.org":       "db01.example.org",
		"a b\nc":                 "abc",
		"":                       "flowprobe",
		" \t":                    "flowprobe",
		strings.Repeat("x", 100): strings.Repeat("x", maxNameLen),
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// probeLog collects what a Responder reports.
type probeLog chan ResponderProbe

func (l probeLog) on(p ResponderProbe) { l <- p }

func (l probeLog) next(t *testing.T) ResponderProbe {
	t.Helper()
	select {
	case p := <-l:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no probe reported within 10s")
	}
	return ResponderProbe{}
}

func TestResponderAnswersTCPAndUDP(t *testing.T) {
	log := make(probeLog, 16)
	tcpPort, udpPort := startTestResponder(t, ResponderConfig{OnProbe: log.on})

	r := checkTCPAt(t, tcpPort, decodeTCP(t, map[string]any{"responder": true}), 10*time.Second)
	if r.Outcome != probe.OutcomeOK || r.Details[probe.DetailResponder] != "true" {
		t.Fatalf("tcp: outcome %s, details %v, err %v", r.Outcome, r.Details, r.Err)
	}
	p := log.next(t)
	if p.Protocol != probe.TCP || p.Port != tcpPort || !p.Hello || p.Remote.Addr().String() != "127.0.0.1" || p.Remote.Port() == 0 {
		t.Errorf("tcp probe reported as %+v", p)
	}

	r = checkUDPAt(t, udpPort, nil, 10*time.Second)
	if r.Outcome != probe.OutcomeOK || r.Details[probe.DetailResponder] != "true" {
		t.Fatalf("udp: outcome %s, details %v, err %v", r.Outcome, r.Details, r.Err)
	}
	if want := "127.0.0.1:"; !strings.HasPrefix(r.Details[DetailResponderSeenAs], want) {
		t.Errorf("udp seen as %q", r.Details[DetailResponderSeenAs])
	}
	p = log.next(t)
	if p.Protocol != probe.UDP || p.Port != udpPort || !p.Hello {
		t.Errorf("udp probe reported as %+v", p)
	}

	// A plain connect (a tcp check without responder) is a probe too.
	if r := checkTCPAt(t, tcpPort, nil, 10*time.Second); r.Outcome != probe.OutcomeOK {
		t.Fatalf("plain connect: %s %v", r.Outcome, r.Err)
	}
	if p := log.next(t); p.Protocol != probe.TCP || p.Hello {
		t.Errorf("plain connect reported as %+v", p)
	}
}

// Over UDP the answer never outgrows the request: an unpadded hello gets
// the bare ACK, and a datagram that is no hello gets nothing.
func TestResponderUDPNoAmplification(t *testing.T) {
	log := make(probeLog, 4)
	_, udpPort := startTestResponder(t, ResponderConfig{OnProbe: log.on, Name: strings.Repeat("n", 64)})
	c, err := net.Dial("udp4", "127.0.0.1:"+strconv.Itoa(udpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	nonce := newNonce()
	hello := responderHello(nonce, 0)
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n > len(hello) {
		t.Errorf("answer of %d bytes to a request of %d", n, len(hello))
	}
	if string(buf[:n]) != "FLOWPROBE/1 ACK "+nonce+"\n" {
		t.Errorf("answer %q, want the bare ACK", buf[:n])
	}
	log.next(t)

	// Not a hello: no answer, but still reported.
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if p := log.next(t); p.Protocol != probe.UDP || p.Hello {
		t.Errorf("garbage reported as %+v", p)
	}
}

func TestResponderTCPRejectsGarbageAndBoundsReads(t *testing.T) {
	log := make(probeLog, 4)
	tcpPort, _ := startTestResponder(t, ResponderConfig{OnProbe: log.on})
	addr := "127.0.0.1:" + strconv.Itoa(tcpPort)

	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "FLOWPROBE/1 ERR ") {
		t.Errorf("answer to garbage: %q, %v", line, err)
	}
	log.next(t)

	// A client that sends an endless line: the responder reads its bound,
	// answers ERR and hangs up; the client's writes then fail.
	c2, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(10 * time.Second))
	chunk := bytes.Repeat([]byte("z"), 4096)
	var werr error
	for range 1024 { // 4 MiB at most
		if _, werr = c2.Write(chunk); werr != nil {
			break
		}
	}
	if werr == nil {
		t.Error("the responder read 4 MiB of one line")
	} else if !errors.Is(werr, syscall.ECONNRESET) && !errors.Is(werr, syscall.EPIPE) {
		t.Errorf("write error %v, want a reset", werr)
	}
	if p := log.next(t); p.Hello {
		t.Errorf("flood reported as a hello: %+v", p)
	}
}

// A silent client is closed after ReadTimeout; it cannot hold a slot.
func TestResponderClosesSilentClient(t *testing.T) {
	log := make(probeLog, 4)
	tcpPort, _ := startTestResponder(t, ResponderConfig{OnProbe: log.on, ReadTimeout: 20 * time.Millisecond})
	c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 8)); err != io.EOF {
		t.Errorf("read from the responder: %v, want EOF (it hung up)", err)
	}
	if p := log.next(t); p.Hello {
		t.Errorf("silent client reported as %+v", p)
	}
}

func TestResponderMaxConns(t *testing.T) {
	log := make(probeLog, 4)
	tcpPort, _ := startTestResponder(t, ResponderConfig{OnProbe: log.on, MaxConns: 1, ReadTimeout: time.Hour})
	addr := "127.0.0.1:" + strconv.Itoa(tcpPort)
	hold, err := net.Dial("tcp4", addr) // takes the only slot and stays silent
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	// The responder has no slot for the next one and hangs up at once.
	r := checkTCPAt(t, tcpPort, decodeTCP(t, map[string]any{"responder": true}), 10*time.Second)
	if r.Outcome == probe.OutcomeOK {
		t.Fatal("a second connection was served beyond MaxConns 1")
	}
	if p := log.next(t); p.Hello {
		t.Errorf("refused connection reported as %+v", p)
	}
}

func TestResponderSkipsPortsInUse(t *testing.T) {
	busyTCP, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	busyUDP, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	tcpBusy := busyTCP.Addr().(*net.TCPAddr).Port
	udpBusy := busyUDP.LocalAddr().(*net.UDPAddr).Port

	r, err := StartResponder(ResponderConfig{Address: "127.0.0.1", TCPPorts: []int{tcpBusy, 0}, UDPPorts: []int{udpBusy}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	skipped := r.Skipped()
	if len(skipped) != 2 || skipped[0].Port != tcpBusy || skipped[0].Protocol != probe.TCP ||
		skipped[1].Port != udpBusy || skipped[1].Protocol != probe.UDP {
		t.Fatalf("skipped %+v", skipped)
	}
	for _, s := range skipped {
		if !errors.Is(s.Err, syscall.EADDRINUSE) {
			t.Errorf("skip reason %v, want address in use", s.Err)
		}
	}
	if l := r.Listening(); len(l) != 1 || l[0].Protocol != probe.TCP || l[0].Port == 0 {
		t.Errorf("listening %+v", l)
	}

	// Nothing could be opened: an error that says why.
	if _, err := StartResponder(ResponderConfig{Address: "127.0.0.1", TCPPorts: []int{tcpBusy}}); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("all ports busy: %v", err)
	}
}

func TestResponderConfigErrors(t *testing.T) {
	for _, cfg := range []ResponderConfig{
		{Address: "127.0.0.1"},
		{Address: "not-an-ip", TCPPorts: []int{0}},
		{Address: "127.0.0.1", UDPPorts: []int{70000}},
	} {
		if r, err := StartResponder(cfg); err == nil {
			r.Close()
			t.Errorf("StartResponder(%+v) succeeded", cfg)
		}
	}
}

// Close hangs up on the clients being served, frees the ports and waits
// for every goroutine: a client held open for an hour does not stop it.
func TestResponderCloseEndsEverything(t *testing.T) {
	r, err := StartResponder(ResponderConfig{Address: "127.0.0.1", TCPPorts: []int{0}, UDPPorts: []int{0}, ReadTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l := r.Listening()
	tcpPort, udpPort := l[0].Port, l[1].Port
	c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Make sure the responder is serving c before closing.
	if _, err := c.Write([]byte("FLOWPROBE/1 ")); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 8)); err == nil {
		t.Error("the served connection is still open after Close")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The ports are free again.
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(tcpPort))
	if err != nil {
		t.Errorf("tcp port still taken after Close: %v", err)
	} else {
		ln.Close()
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(udpPort))
	if err != nil {
		t.Errorf("udp port still taken after Close: %v", err)
	} else {
		pc.Close()
	}
}

// On a wildcard address the UDP answer leaves from the address the hello
// was sent to, or a client's connected socket would drop it: 127.0.0.2 is
// a second loopback address, and routing alone would answer from
// 127.0.0.1.
func TestResponderWildcardAnswersFromTheRightAddress(t *testing.T) {
	r, err := StartResponder(ResponderConfig{TCPPorts: []int{0}, UDPPorts: []int{0}, Name: "any"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l := r.Listening()
	for _, host := range []string{"127.0.0.1", "127.0.0.2", "::1"} {
		for _, p := range l {
			tg := probe.Target{Host: host, Port: p.Port, Timeout: 10 * time.Second}
			var res probe.Result
			if p.Protocol == probe.TCP {
				tg.Options = decodeTCP(t, map[string]any{"responder": true})
				res = probe.Run(t.Context(), tcpKind.Checker, tg)
			} else {
				res = probe.Run(t.Context(), udpKind.Checker, tg)
			}
			if host == "::1" && res.Outcome != probe.OutcomeOK && !ipv6Loopback() {
				continue
			}
			if res.Outcome != probe.OutcomeOK || res.Details[probe.DetailResponder] != "true" {
				t.Errorf("%s to %s: outcome %s, details %v, err %v", p.Protocol, host, res.Outcome, res.Details, res.Err)
			}
		}
	}
}

func ipv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
