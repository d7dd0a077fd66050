package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFlowprobeProcess is not a test: run as a subprocess with
// FLOWPROBE_TEST_PROCESS=1, it is flowprobe itself, with the arguments
// after "--", so that signals and exit codes are the real ones.
func TestFlowprobeProcess(t *testing.T) {
	if os.Getenv("FLOWPROBE_TEST_PROCESS") != "1" {
		t.Skip("runs only as the subprocess of another test")
	}
	i := slices.Index(os.Args, "--")
	os.Exit(run(os.Args[i+1:], os.Stdout, os.Stderr))
}

// flowprobeProcess prepares flowprobe args as a subprocess of the test
// binary, ended (with its process) after bound at the latest.
func flowprobeProcess(t *testing.T, bound time.Duration, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^TestFlowprobeProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "FLOWPROBE_TEST_PROCESS=1")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// silentPeer accepts TCP connections on 127.0.0.1 and never writes; each
// accepted connection is announced on the returned channel.
func silentPeer(t *testing.T) (port int, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, ch
}

// interruptSite writes a site with one flow to an open port and two to a
// silent peer whose checks wait for an answer that never comes.
func interruptSite(t *testing.T, open, silent int) string {
	t.Helper()
	cfg := fmt.Sprintf(`site: test
products:
  - name: sios-lifekeeper
    self: node
    only: [app-open, app-silent, app-mute]
    interval: 10m
    timeout: 5m
    roles:
      app:
        hosts: [127.0.0.1]
    extra_flows:
      - {id: app-open, source: node, destination: app, protocol: tcp, ports: %d, purpose: open}
      - {id: app-silent, source: node, destination: app, protocol: tcp, ports: %d, purpose: silent, options: {send: "hello\n", expect: "^never"}}
      - {id: app-mute, source: node, destination: app, protocol: tcp, ports: %d, purpose: silent too, options: {send: "hi\n", expect: "^never"}}
`, open, silent, silent)
	path := filepath.Join(t.TempDir(), "site.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Ctrl-C during `flowprobe check`: the checks still waiting on a silent
// peer end as interrupted, the one that finished is shown, the run says how
// many did not run and exits 130, and --output.file is not written.
func TestCheckInterruptedBySIGINT(t *testing.T) {
	_, open, _ := checkSite(t, true) // its open port accepts and closes
	silent, accepted := silentPeer(t)
	site := interruptSite(t, open, silent)
	outFile := filepath.Join(t.TempDir(), "report.json")

	cmd := flowprobeProcess(t, 2*time.Minute, "check", "--config.file", site, "--progress", "always",
		"--output", "json", "--output.file", outFile)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The progress line counts finished checks: "[1/3]" is the open flow.
	var stderr bytes.Buffer
	oneDone := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(io.TeeReader(stderrPipe, &stderr))
		sc.Split(splitCR)
		seen := false
		for sc.Scan() {
			if !seen && strings.HasPrefix(strings.TrimPrefix(sc.Text(), "\033[K"), "[1/3]") {
				seen = true
				close(oneDone)
			}
		}
	}()
	// Both silent checks are running and the open one is done; should
	// flowprobe end first, its stderr closes.
	finished := oneDone // nil once seen
	for running := 0; running < 2 || finished != nil; {
		select {
		case <-accepted:
			running++
		case <-finished:
			finished = nil
		case <-readDone:
			cmd.Wait()
			t.Fatalf("flowprobe check ended before the interrupt:\n%s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-readDone
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v, want %d\nstderr:\n%s", err, exitInterrupted, stderr.String())
	}
	// What follows the progress line's last clearing.
	errText := stderr.String()
	if i := strings.LastIndex(errText, "\033[K"); i >= 0 {
		errText = errText[i+len("\033[K"):]
	}
	if !strings.Contains(errText, "interrupted: 2 of 3 checks did not run; no report was written\n") {
		t.Errorf("stderr does not say how many checks did not run:\n%s", errText)
	}
	if !strings.Contains(errText, "✓ app-open") || strings.Contains(errText, "app-silent") || strings.Contains(errText, "app-mute") {
		t.Errorf("stderr must show the finished check and only it:\n%s", errText)
	}
	if stdout.Len() != 0 {
		t.Errorf("an interrupted run wrote to stdout:\n%s", stdout.String())
	}
	if _, err := os.Stat(outFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an interrupted run left a report file (%v)", err)
	}
}

// splitCR splits the progress stream at \r as well as \n.
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// The same in-process, by cancelling the context as the signal does: an
// existing --output.file is left as it was.
func TestCheckInterruptedKeepsAnExistingReport(t *testing.T) {
	silent, accepted := silentPeer(t)
	_, open, _ := checkSite(t, true)
	site := interruptSite(t, open, silent)
	outFile := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(outFile, []byte("last run's report\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-accepted
		<-accepted
		cancel()
	}()
	var stdout, stderr bytes.Buffer
	code := runContext(ctx, []string{"check", "--config.file", site, "--output", "junit", "--output.file", outFile, "--progress", "never"}, &stdout, &stderr)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, exitInterrupted, stderr.String())
	}
	// Whether app-open finished before the cancel is a race: either way
	// the two silent checks did not run.
	if !strings.Contains(stderr.String(), "of 3 checks did not run; no report was written\n") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	if b, err := os.ReadFile(outFile); err != nil || string(b) != "last run's report\n" {
		t.Errorf("the existing report became %q (%v)", b, err)
	}
}

// A check this machine cannot run (a source address on no interface: no
// packet leaves) ends the run with exit 2 and the remedy, said once.
func TestCheckLocalErrorExits2(t *testing.T) {
	site, _, _ := checkSite(t, true)
	b, err := os.ReadFile(site)
	if err != nil {
		t.Fatal(err)
	}
	// 192.0.2.1 (TEST-NET-1) is on no interface of a test machine.
	if err := os.WriteFile(site, append([]byte("source_address: 192.0.2.1\n"), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(t.TempDir(), "report.txt")
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "--config.file", site, "--output.file", outFile}, &stdout, &stderr)
	if code != exitLocal {
		t.Fatalf("exit %d, want %d\n%s", code, exitLocal, stderr.String())
	}
	want := "flowprobe could not run 2 checks on this machine: the source address is on no interface of this machine: fix source_address or run the check where that address lives (exit 2)\n"
	if n := strings.Count(stderr.String(), "could not run"); n != 1 || !strings.HasSuffix(stderr.String(), want) {
		t.Errorf("stderr must end with the remedy, once:\n%s\nwant the end:\n%s", stderr.String(), want)
	}
	rep, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rep), "local_error") || !strings.Contains(string(rep), "source address is not on this machine — the source address is on no interface") {
		t.Errorf("the report shows neither the outcome nor the reason and hint:\n%s", rep)
	}
}

// `flowprobe probe` interrupted while the peer is silent: no result, 130.
func TestProbeInterrupted(t *testing.T) {
	silent, accepted := silentPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-accepted
		cancel()
	}()
	var stdout, stderr bytes.Buffer
	code := runContext(ctx, []string{"probe", "tcp", fmt.Sprintf("127.0.0.1:%d", silent), "--timeout", "5m",
		"--set", `send="hello\n"`, "--set", "expect=^never"}, &stdout, &stderr)
	if code != exitInterrupted || stdout.Len() != 0 ||
		stderr.String() != "flowprobe probe: interrupted: the check did not finish\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
