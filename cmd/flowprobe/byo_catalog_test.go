package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// freeNetPort returns a port of addr that was free a moment ago: bound by the
// test on port 0, then released for the responder to take.
func freeNetPort(t *testing.T, network, addr string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A fifth product from a CSV: imported, named in a site config, validated,
// answered by `flowprobe listen --config.file` and checked end to end on
// loopback.
func TestImportedProductEndToEnd(t *testing.T) {
	dir := t.TempDir()
	tcpPort, udpPort := freeNetPort(t, "tcp", loopDest), freeNetPort(t, "udp", loopDest)
	csvFile := filepath.Join(dir, "acme-backup.csv")
	writeFile(t, csvFile, fmt.Sprintf(`protocol,port,source,destination,purpose
TCP,%d,Backup Agent,Backup Server,Agent registration
UDP,%d,Backup Agent,Backup Server,Heartbeat
ICMP,,Backup Server,Backup Agent,Reachability
`, tcpPort, udpPort))
	code, yml, stderr := runCLI(t, "catalog", "import", csvFile, "--title", "ACME Backup")
	if code != exitOK {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	writeFile(t, filepath.Join(dir, "acme-backup.yaml"), yml)
	cfg := filepath.Join(dir, "site.yml")
	writeFile(t, cfg, `site: lab
catalogs: [acme-backup.yaml]
self_addresses: [127.0.0.2]
source_address: 127.0.0.2
products:
  - name: acme-backup
    self: backup-agent
    timeout: 2s
    roles:
      backup-server:
        hosts: [127.0.0.3]
        responder: true
`)
	if code, stdout, stderr := runCLI(t, "validate", cfg); code != exitOK || !strings.Contains(stdout, "OK (2 targets") {
		t.Fatalf("validate: exit %d:\n%s%s", code, stdout, stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lout bytes.Buffer
	lerr := &lineWaiter{want: "answering flowprobe probes", seen: make(chan struct{})}
	done := make(chan int)
	go func() {
		f := &listenFlags{config: cfg, role: "backup-server", address: loopDest, duration: 60e9}
		addLogFlagsDefaults(f)
		done <- runListen(ctx, &cli{stdout: &lout, stderr: lerr}, f)
	}()
	select {
	case <-lerr.seen:
	case code := <-done:
		t.Fatalf("listen exited %d early:\n%s", code, lerr.String())
	}
	code, out, errOut := runCLI(t, "check", cfg, "-o", "json")
	cancel()
	if got := <-done; got != exitOK {
		t.Errorf("listen exit %d:\n%s", got, lerr.String())
	}
	if code != exitOK {
		t.Fatalf("check exit %d:\n%s%s\nlisten:\n%s", code, out, errOut, lerr.String())
	}
	for _, want := range []string{fmt.Sprintf("tcp/%d", tcpPort), fmt.Sprintf("udp/%d", udpPort), "2 probes received on 2 ports"} {
		if !strings.Contains(lout.String(), want) {
			t.Errorf("listen summary lacks %q:\n%s", want, lout.String())
		}
	}
}

// A site's catalog file is checked with the catalog's own errors, and
// merged by product name: it may add flows to a built-in product, but not
// redefine one.
func TestSiteCatalogErrorsAndMerge(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "xenserver.yaml"), `product: xenserver
title: XenServer 8 (site additions)
documents:
  - {id: site, file: site-notes.txt, title: Site notes, language: en}
roles:
  - {name: backup-server, description: The site's backup server.}
flows:
  - {id: host-backup, source: xenserver-host, destination: backup-server, protocol: tcp, ports: [9443], purpose: Backups, required: required, section: Site}
  - {id: ntp-udp, source: xenserver-host, destination: ntp-server, protocol: udp, ports: [123], purpose: NTP again, required: required, section: Site}
`)
	writeFile(t, filepath.Join(dir, "broken.yaml"), `product: broken
title: Broken
documents: [{id: d, file: d.txt, title: D, language: en}]
roles: [{name: a, description: A.}]
flows:
  - {id: x, source: a, destination: b, protocol: tcp, ports: [70000], purpose: X, required: required, section: S}
`)
	cfg := filepath.Join(dir, "site.yml")
	writeFile(t, cfg, `catalogs: [xenserver.yaml, broken.yaml]
products:
  - name: xenserver
    self: xenserver-host
    only: [host-backup]
    roles:
      backup-server: {hosts: [192.0.2.90]}
`)
	code, _, stderr := runCLI(t, "validate", cfg)
	if code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		filepath.Join(dir, "broken.yaml") + `:6: flow "x": destination "b" is not a declared role`,
		filepath.Join(dir, "broken.yaml") + `:6: flow "x": ports: port 70000 is outside 1..65535`,
		filepath.Join(dir, "xenserver.yaml") + `:9: flow "ntp-udp": product "xenserver" already has this flow (catalog/xenserver.yaml:`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// Without the broken files the addition plans.
	writeFile(t, filepath.Join(dir, "xenserver.yaml"), strings.Split(mustRead(t, filepath.Join(dir, "xenserver.yaml")), "  - {id: ntp-udp")[0])
	writeFile(t, cfg, strings.Replace(mustRead(t, cfg), ", broken.yaml", "", 1))
	code, stdout, stderr := runCLI(t, "plan", cfg)
	if code != exitOK || !strings.Contains(stdout, "host-backup") || !strings.Contains(stdout, "192.0.2.90") {
		t.Errorf("plan: exit %d:\n%s%s", code, stdout, stderr)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
