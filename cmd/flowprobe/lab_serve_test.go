//go:build lab

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// These tests run `flowprobe serve` in-process against the lab of real
// servers, with one flow per interesting outcome, and look at it the way
// users do: a real Prometheus scrapes it and answers the dashboard's and the
// alert rules' queries, and a real browser renders the status page.
//
// This file holds the lab site and the stack the tests share: flowprobe
// serving the site, Prometheus scraping it (lab_prometheus_test.go) and the
// extra verdict sites. The tests live by concern in lab_prometheus_test.go,
// lab_alerts_test.go, lab_grafana_test.go and lab_chromium_test.go.

// serveLabFlow is one extra flow of the lab site and the outcome it must get.
type serveLabFlow struct {
	id, destination, protocol string
	port                      int
	check                     string
	options                   string // YAML flow style; {ca}, {password_file} and {user} are filled in
	outcome                   probe.Outcome
}

// serveLabFlows cover the outcomes the alert rules are about. web-http is
// DROPped by the lab firewall for the length of each test; port 7 is closed.
var serveLabFlows = []serveLabFlow{
	{"web-http", "web", "tcp", testlab.HTTPPort, "http", "", probe.OutcomeTimeout},
	{"web-https", "web", "tcp", testlab.HTTPSPort, "tls", "{ca_file: {ca}, server_name: " + testlab.ServerName + "}", probe.OutcomeOK},
	{"portal-https", "web", "tcp", testlab.HTTPSExpired, "tls", "{ca_file: {ca}, server_name: " + testlab.ServerName + "}", probe.OutcomeTLSError},
	{"ldap-bind", "directory", "tcp", testlab.LDAPPort, "ldap", "{mode: starttls, bind_dn: {user}, password_file: {password_file}, tls: {ca_file: {ca}, server_name: " + testlab.ServerName + "}}", probe.OutcomeAuthError},
	{"ldaps", "directory", "tcp", testlab.LDAPSPort, "ldap", "{mode: ldaps, tls: {ca_file: {ca}, server_name: " + testlab.ServerName + "}}", probe.OutcomeOK},
	{"ntp", "time", "udp", testlab.NTPPort, "ntp", "", probe.OutcomeOK},
	{"ntp-backup", "time", "udp", testlab.NTPUnsyncPort, "ntp", "", probe.OutcomeProtocolError},
	{"ping", "gateway", "icmp", 0, "icmp", "{count: 1, reply_timeout: 500ms}", probe.OutcomeOK},
	{"echo", "gateway", "tcp", testlab.ClosedTCPPort, "tcp", "", probe.OutcomeRefused},
}

const (
	serveLabProduct = "sios-lifekeeper"
	serveLabSelf    = "monitor"
	serveLabJob     = "flowprobe"
	// serveLabDeadJob scrapes the same flowprobe at a path it does not
	// serve, so FlowprobeDown has a job to fire for.
	serveLabDeadJob = "flowprobe-unscrapable"
	// serveLabWait bounds every wait for flowprobe, Prometheus or Chromium.
	serveLabWait = 90 * time.Second
)

// serveLabOutcomes maps each flow to the outcome it must get.
func serveLabOutcomes() map[string]string {
	m := map[string]string{}
	for _, f := range serveLabFlows {
		m[f.id] = f.outcome.String()
	}
	return m
}

// writeServeLabSite writes the lab site config and a wrong LDAP password;
// it returns the config's path and the password.
func writeServeLabSite(t *testing.T) (path, password string) {
	t.Helper()
	dir := t.TempDir()
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	password = "wrong-" + hex.EncodeToString(buf)
	pwFile := filepath.Join(dir, "ldap.pw")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("{ca}", strconv.Quote(testlab.File("ca.pem")), "{password_file}", strconv.Quote(pwFile), "{user}", strconv.Quote(testlab.LDAPUserDN))
	var b strings.Builder
	fmt.Fprintf(&b, "site: lab\nproducts:\n  - name: %s\n    self: %s\n    interval: 2s\n    timeout: 1s\n    roles:\n", serveLabProduct, serveLabSelf)
	var roles []string
	for _, f := range serveLabFlows {
		if !slices.Contains(roles, f.destination) {
			roles = append(roles, f.destination)
			fmt.Fprintf(&b, "      %s: {hosts: [%s]}\n", f.destination, testlab.ServerAddr)
		}
	}
	b.WriteString("    extra_flows:\n")
	for _, f := range serveLabFlows {
		fmt.Fprintf(&b, "      - id: %s\n        source: %s\n        destination: %s\n        protocol: %s\n        check: %s\n", f.id, serveLabSelf, f.destination, f.protocol, f.check)
		if f.port != 0 {
			fmt.Fprintf(&b, "        ports: %d\n", f.port)
		}
		if f.options != "" {
			fmt.Fprintf(&b, "        options: %s\n", fill.Replace(f.options))
		}
	}
	path = filepath.Join(dir, "site.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, password
}

// startLabServe runs `flowprobe serve --config.file=path` in-process on
// 127.0.0.1:0 and returns its base URL (http://127.0.0.1:port) once it serves.
func startLabServe(t *testing.T, path string) (base string, logs *syncBuffer) {
	t.Helper()
	noSystemd, noWebConfig := false, ""
	o := &serveOptions{
		configFile: path,
		lifecycle:  true,
		web:        &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: &noSystemd, WebConfigFile: &noWebConfig},
		hup:        make(chan os.Signal), // reloads only through POST /-/reload
	}
	addr := make(chan string, 1)
	o.listening = func(a []net.Addr) { addr <- "http://" + a[0].String() }
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	logs = &syncBuffer{}
	go func() { exit <- serve(ctx, o, logs) }()
	select {
	case base = <-addr:
	case code := <-exit:
		cancel()
		t.Fatalf("flowprobe serve exited with %d:\n%s", code, logs)
	case <-time.After(serveLabWait):
		cancel()
		t.Fatalf("flowprobe serve did not listen within %s:\n%s", serveLabWait, logs)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exit:
			if code != exitOK {
				t.Errorf("flowprobe serve exited with %d on shutdown:\n%s", code, logs)
			}
		case <-time.After(10 * time.Second):
			t.Error("flowprobe serve did not shut down")
		}
	})
	return base, logs
}

// labHTTP is the client of these tests; every request is bounded.
var labHTTP = &http.Client{Timeout: 10 * time.Second}

// poll calls cond until it reports done, at most for within. state says
// what cond saw last, for the failure message.
func poll(t *testing.T, within time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, within, state)
		}
		<-tick.C
	}
}

// labStack is a flowprobe serving the lab site, scraped by Prometheus,
// with the lab firewall dropping web-http.
type labStack struct {
	flowprobe string // base URL
	config    string // site config path
	prom      *promServer
}

// startLabStack starts the stack; each of extra is one more flowprobe
// serving that site config, scraped as a job of its own (the site's name).
func startLabStack(t *testing.T, extra ...verdictSite) *labStack {
	t.Helper()
	testlab.Require(t)
	testlab.Firewall(t, "tcp", testlab.HTTPPort, testlab.Drop)
	config, _ := writeServeLabSite(t)
	base, _ := startLabServe(t, config)
	var jobs []promJob
	for _, v := range extra {
		b, _ := startLabServe(t, writeVerdictSite(t, v))
		jobs = append(jobs, promJob{job: v.job, addr: strings.TrimPrefix(b, "http://")})
	}
	s := &labStack{flowprobe: base, config: config, prom: startPrometheus(t, strings.TrimPrefix(base, "http://"), jobs...)}
	return s
}

// verdictSite is a flowprobe of its own with one flow whose verdict is not
// its outcome alone: a flow that must be blocked, or a source address that
// is not on this machine. It has a site config of its own because
// source_address holds for a whole site.
type verdictSite struct {
	job           string // scrape job
	flow          string
	expect        probe.Expect
	sourceAddress string
	// outcome is the outcome the flow must get, by name: local_error is
	// an outcome of the DESIGN's vocabulary that probe may not know yet.
	outcome string
}

// verdictSites: the lab's HTTPS port is open, so a flow to it that must be
// blocked is a deny violation; 192.0.2.1 (TEST-NET-1) is a source address
// only, never a target: no local socket can bind it, so flowprobe cannot run
// the check at all (local_error), which says nothing about the network.
var verdictSites = []verdictSite{
	{job: "flowprobe-deny", flow: "legacy-https", expect: probe.ExpectDeny, outcome: "ok"},
	{job: "flowprobe-local", flow: "unbound-source", sourceAddress: "192.0.2.1", outcome: "local_error"},
}

// writeVerdictSite writes v's site config: one tcp flow from the lab's
// monitor role to the lab server's HTTPS port.
func writeVerdictSite(t *testing.T, v verdictSite) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("site: lab\n")
	if v.sourceAddress != "" {
		fmt.Fprintf(&b, "source_address: %s\n", v.sourceAddress)
	}
	fmt.Fprintf(&b, "products:\n  - name: %s\n    self: %s\n    interval: 2s\n    timeout: 1s\n    roles:\n      web: {hosts: [%s]}\n", serveLabProduct, serveLabSelf, testlab.ServerAddr)
	fmt.Fprintf(&b, "    extra_flows:\n      - id: %s\n        source: %s\n        destination: web\n        protocol: tcp\n        check: tcp\n        ports: %d\n", v.flow, serveLabSelf, testlab.HTTPSPort)
	if v.expect != "" {
		fmt.Fprintf(&b, "        expect: %s\n", v.expect)
	}
	path := filepath.Join(t.TempDir(), v.job+".yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitVerdicts waits until Prometheus holds the expected outcome and a
// failed verdict of every verdict site's flow.
func (s *labStack) waitVerdicts(t *testing.T) {
	t.Helper()
	for _, v := range verdictSites {
		q := fmt.Sprintf(`flowprobe_check_outcome{job=%q,flow=%q} == 1 and ignoring(outcome) flowprobe_check_success == 0`, v.job, v.flow)
		poll(t, serveLabWait, v.job+": "+v.flow+" fails with "+v.outcome, func() (bool, string) {
			got, err := s.prom.query(q)
			if err != nil || len(got) != 1 {
				return false, fmt.Sprint(got, err)
			}
			return got[0].Metric["outcome"] == v.outcome, fmt.Sprint(got)
		})
	}
}

// waitScraped waits until Prometheus holds every flow's latest outcome as
// expected, five scrapes of flowprobe (so rate() and increase() over 1m
// have samples), and a failed scrape of the unscrapable job.
func (s *labStack) waitScraped(t *testing.T) {
	t.Helper()
	want := serveLabOutcomes()
	poll(t, serveLabWait, "prometheus has scraped every flow's outcome", func() (bool, string) {
		got, err := s.prom.query(`flowprobe_check_outcome{job="flowprobe"} == 1`)
		if err != nil {
			return false, err.Error()
		}
		outcomes := map[string]string{}
		for _, g := range got {
			outcomes[g.Metric["flow"]] = g.Metric["outcome"]
		}
		if !maps.Equal(outcomes, want) {
			return false, fmt.Sprintf("outcomes %v, want %v", outcomes, want)
		}
		return true, ""
	})
	poll(t, serveLabWait, "five scrapes", func() (bool, string) {
		got, err := s.prom.query(`count_over_time(flowprobe_targets{job="flowprobe"}[1m]) >= 5`)
		if err != nil || len(got) != 1 {
			return false, fmt.Sprint(got, err)
		}
		down, err := s.prom.query(`up{job="flowprobe-unscrapable"} == 0`)
		return err == nil && len(down) == 1, fmt.Sprint("unscrapable job: ", down, err)
	})
}
