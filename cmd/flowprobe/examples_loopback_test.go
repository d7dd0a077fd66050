package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// Source and destination of the loopback run of the examples.
const (
	loopSource = "127.0.0.2"
	loopDest   = "127.0.0.3"
)

// loopbackConfig moves an example onto loopback: this instance is
// 127.0.0.2, every role with hosts is the one host 127.0.0.3 running
// `flowprobe listen` (a responder role, so checks carry no kind-specific
// options), and port overrides are kept.
func loopbackConfig(cfg *site.Config) {
	cfg.SelfAddresses, cfg.LocalAddresses = []string{loopSource}, nil
	cfg.SourceAddress, cfg.IPFamily = loopSource, "ip4"
	cfg.Defaults.Options = nil
	for _, pc := range cfg.Products {
		pc.Options = nil
		for _, rc := range pc.Roles {
			if len(rc.Hosts) == 0 {
				continue
			}
			h := site.HostConfig{Host: loopDest, Ports: map[string]int{}, PortRanges: map[string]probe.PortSpec{}}
			for _, old := range rc.Hosts {
				for k, v := range old.Ports {
					h.Ports[k] = v
				}
				for k, v := range old.PortRanges {
					h.PortRanges[k] = v
				}
			}
			rc.Hosts = []site.HostConfig{h}
			rc.Responder, rc.Check, rc.Options = true, "", nil
		}
		for _, fc := range pc.Flows {
			fc.Check, fc.Options = "", nil
		}
	}
}

// The four examples validate, plan, listen and check on loopback: every
// port listen opens from the example is one check probes, and every flow
// passes — allowed flows answered by the responder, expect: deny flows
// refused before connect, as nothing listens for them. The ports are remapped to ones
// the test binds (port 0), so no fixed port of the machine is needed;
// flows to fixed external names are never probed.
func TestExamplesOnLoopback(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLOWPROBE_AD_PASSWORD", "not-a-real-password")
	examples, _ := filepath.Glob("../../deploy/examples/*.yml")
	if len(examples) != 4 {
		t.Fatalf("examples %v", examples)
	}
	for _, ex := range examples {
		t.Run(strings.TrimSuffix(filepath.Base(ex), ".yml"), func(t *testing.T) {
			if code, _, stderr := runCLI(t, "validate", ex); code != exitOK {
				t.Fatalf("validate: %s", stderr)
			}
			data, err := os.ReadFile(ex)
			if err != nil {
				t.Fatal(err)
			}
			_, plan, err := site.CheckConfig(cat.Products, ex, data, checks.Binder{}, loopbackConfig)
			if err != nil {
				t.Fatal(err)
			}
			var targets []probe.Target
			for _, tg := range plan.Targets {
				if tg.Host == loopDest {
					targets = append(targets, tg)
				} else if net.ParseIP(tg.Host) != nil || !strings.Contains(tg.Host, ".") {
					t.Errorf("%s: target %s is neither the loopback host nor an external name", tg.Flow, tg.Host)
				}
			}
			if len(targets) == 0 {
				t.Fatal("no target on loopback")
			}
			t.Logf("%d targets on %s", len(targets), loopDest)
			// What `flowprobe listen --role` opens on 127.0.0.3 is what is probed.
			ports, _ := targetPorts(plan.Targets, "", map[string]bool{loopDest: true})
			open := map[string]bool{}
			for _, p := range ports {
				open[string(p.proto)+"/"+itoa(p.port)] = true
			}
			for _, tg := range targets {
				if tg.Protocol != probe.ICMP && !open[string(tg.Protocol)+"/"+itoa(tg.Port)] {
					t.Errorf("%s: %s/%d is probed but listen does not open it", tg.Flow, tg.Protocol, tg.Port)
				}
			}
			// Bind each port the responder would open to a port of the
			// test's choosing; deny flows get a port nothing listens on.
			mapped := map[string]int{}
			for _, p := range ports {
				cfg := checks.ResponderConfig{Address: loopDest, Name: "loopback-test"}
				if p.proto == probe.TCP {
					cfg.TCPPorts = []int{0}
				} else {
					cfg.UDPPorts = []int{0}
				}
				resp, err := checks.StartResponder(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Close() })
				mapped[string(p.proto)+"/"+itoa(p.port)] = resp.Listening()[0].Port
			}
			closed := closedPorts(t)
			for i := range targets {
				tg := &targets[i]
				tg.Timeout = 3 * time.Second
				switch {
				case tg.Protocol == probe.ICMP:
				case tg.Expect == probe.ExpectDeny:
					tg.Port = closed[tg.Protocol]
				default:
					tg.Port = mapped[string(tg.Protocol)+"/"+itoa(tg.Port)]
				}
			}
			for _, tg := range targets {
				r := checks.Check(context.Background(), tg)
				if !r.Success {
					t.Errorf("%s %s/%d (%s, expect %s): %s %v", tg.Flow, tg.Protocol, tg.Port, tg.Check, tg.Expect, r.Outcome, r.Err)
				}
			}
		})
	}
}

// closedPorts returns a TCP and a UDP port of 127.0.0.3 that nothing
// listens on: bound by the test, then released.
func closedPorts(t *testing.T) map[probe.Protocol]int {
	t.Helper()
	l, err := net.Listen("tcp", loopDest+":0")
	if err != nil {
		t.Fatal(err)
	}
	tcp := l.Addr().(*net.TCPAddr).Port
	l.Close()
	u, err := net.ListenPacket("udp", loopDest+":0")
	if err != nil {
		t.Fatal(err)
	}
	udp := u.LocalAddr().(*net.UDPAddr).Port
	u.Close()
	return map[probe.Protocol]int{probe.TCP: tcp, probe.UDP: udp}
}

func itoa(n int) string { return strconv.Itoa(n) }
