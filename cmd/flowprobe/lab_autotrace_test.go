//go:build lab

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
)

// TestTraceLabServeAutomatic runs `flowprobe serve` in the client namespace
// of its own chain against a server behind a firewall that drops tcp/389:
// the flow turns failed, the daemon traces it, and the metrics, the status
// page and the JSON API name the hop where it stops.
func TestTraceLabServeAutomatic(t *testing.T) {
	c := testlab.NewChain(t)
	c.Do(t, testlab.ChainServer, func() {
		l, err := net.Listen("tcp", ":389")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	})
	c.Block(t, "tcp", 389, testlab.Drop)
	server, b := testlab.ChainAddr(testlab.ChainServer, false), testlab.ChainAddr(testlab.ChainFirewallB, false)
	cfg := filepath.Join(t.TempDir(), "site.yml")
	site := fmt.Sprintf(`site: chain
products:
  - name: sios-lifekeeper
    self: client
    only: [directory]
    interval: 30s
    timeout: 1s
    extra_flows:
      - id: directory
        source: client
        destination: server
        hostname: %s
        protocol: tcp
        ports: [389]
        check: tcp
`, server)
	if err := os.WriteFile(cfg, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", c.NS[testlab.ChainClient], flowprobeBin, "serve",
		"--config.file="+cfg, "--web.listen-address=127.0.0.1:0")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()

	// The log says where the status page is, then that the path was
	// traced; both lines come once, so reading up to them is bounded by
	// the context above.
	var base, logged string
	urlRe := regexp.MustCompile(`url=(http://\S+)`)
	sc := bufio.NewScanner(logs)
	for sc.Scan() {
		line := sc.Text()
		logged += line + "\n"
		if m := urlRe.FindStringSubmatch(line); m != nil {
			base = strings.TrimSuffix(m[1], "/")
		}
		if strings.Contains(line, `msg="Path traced"`) {
			if !strings.Contains(line, "stored=true") {
				t.Fatalf("the trace was not stored:\n%s", logged)
			}
			break
		}
	}
	if base == "" || !strings.Contains(logged, "Path traced") {
		t.Fatalf("serve ended before tracing the failed flow:\n%s", logged)
	}
	go func() { _, _ = io.Copy(io.Discard, logs) }()
	addr := strings.TrimPrefix(base, "http://")

	metrics := getIn(t, c, addr, "/metrics")
	for _, want := range []string{
		`flowprobe_check_success{check="tcp",destination="server",flow="directory"`,
		`flowprobe_path_blocked_hop{check="tcp",destination="server",flow="directory",port="389",product="sios-lifekeeper",protocol="tcp",site="chain",source="client",target="` + server + `:389"} 3`,
		`flowprobe_path_last_hop_info{check="tcp",destination="server",flow="directory",hop_address="` + b + `",port="389"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	page := getIn(t, c, addr, "/")
	if want := "hop 3 silent for tcp/389"; !strings.Contains(page, want) {
		t.Errorf("the status page lacks %q", want)
	}
	var results []struct {
		Flow  string `json:"flow"`
		Trace *struct {
			BlockedHop int    `json:"blocked_hop"`
			LastHop    string `json:"last_hop"`
			Verdict    string `json:"verdict"`
		} `json:"trace"`
	}
	if err := json.Unmarshal([]byte(getIn(t, c, addr, "/api/v1/results")), &results); err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Trace == nil || results[0].Trace.BlockedHop != 3 || results[0].Trace.LastHop != b {
		t.Errorf("/api/v1/results: %+v, want the trace blocked at hop 3 after %s", results, b)
	} else {
		t.Logf("verdict: %s", results[0].Trace.Verdict)
	}
}

// getIn fetches path from addr inside the chain's client namespace: the
// connection is dialled from a thread in that namespace, and the request
// goes over it by hand (an http.Client would dial from another thread).
func getIn(t *testing.T, c *testlab.Chain, addr, path string) string {
	t.Helper()
	var body string
	c.Do(t, testlab.ChainClient, func() {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := http.NewRequest("GET", "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Close = true
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		body = string(b)
	})
	return body
}
