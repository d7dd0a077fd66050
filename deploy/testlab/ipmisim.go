//go:build linux

package testlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Addresses of an IPMISim's link, used only inside its own namespaces.
const (
	IPMIClientAddr = "10.94.0.1"
	IPMIAddr       = "10.94.0.2"
)

// IPMIPort is the port an IPMISim's BMC serves IPMI over LAN on.
const IPMIPort = 623

// ipmiStartTimeout bounds how long an IPMISim may take to answer.
const ipmiStartTimeout = 15 * time.Second

// IPMISim is a baseboard management controller of the test's own:
// OpenIPMI's ipmi_sim serving IPMI over LAN (RMCP and RMCP+) on
// IPMIAddr:IPMIPort in namespace fpipmi-<random>-bmc, reached from
// fpipmi-<random>-c (IPMIClientAddr) over a veth pair. Its one BMC
// allows anonymous (no password) and MD5 logins; the checks open no
// session. Nothing is written outside Dir.
type IPMISim struct {
	// Pair: Dir holds the configuration, the simulator's state and its log.
	Pair
}

// NewIPMISim starts a BMC simulator and removes everything when the test
// ends. It fails the test when the BMC does not answer a presence ping
// in time.
func NewIPMISim(t testing.TB) *IPMISim {
	t.Helper()
	for _, b := range []string{"ipmi_sim", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("ipmisim: %s is missing: run deploy/testlab/lab.sh install first", b)
		}
	}
	s := &IPMISim{Pair: newPair(t, "fpipmi", "bmc", []string{IPMIClientAddr + "/24"}, []string{IPMIAddr + "/24"})}
	dir := s.Dir
	// ipmi_sim starts with no management controller: the command file
	// adds the BMC at IPMB address 0x20 and enables it.
	conf, emu, state := filepath.Join(dir, "lan.conf"), filepath.Join(dir, "bmc.emu"), filepath.Join(dir, "state")
	writeFile(t, conf, []byte(ipmiLanConf()), 0o600)
	writeFile(t, emu, []byte("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"), 0o644)
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatalf("ipmisim: %v", err)
	}
	p := spawnIn(t, s.NS, dir, "ipmi_sim", "ipmi_sim", "-c", conf, "-f", emu, "-s", state, "-n")
	s.waitReady(t, p)
	return s
}

// ipmiLanConf is the simulator's configuration: one LAN channel on the
// BMC's address, an anonymous user and an admin with an MD5 password.
func ipmiLanConf() string {
	return fmt.Sprintf(`name "fplab"
set_working_mc 0x20
  startlan 1
    addr %s %d
    priv_limit admin
    allowed_auths_callback none md5
    allowed_auths_user none md5
    allowed_auths_operator none md5
    allowed_auths_admin none md5
    guid 0123456789abcdef0123456789abcdef
  endlan
  user 1 true "" "" user 1 none md5
  user 2 true "lab" "lab-test" admin 1 md5
`, IPMIAddr, IPMIPort)
}

// waitReady sends presence pings from the client namespace until the BMC
// answers, or fails the test at ipmiStartTimeout with the simulator's log.
func (s *IPMISim) waitReady(t testing.TB, p adProc) {
	t.Helper()
	ping := []byte{0x06, 0, 0xff, 0x06, 0, 0, 0x11, 0xbe, 0x80, 1, 0, 0} // ASF presence ping, tag 1
	deadline := time.Now().Add(ipmiStartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("ipmisim: ipmi_sim exited while starting: %v\n%s", err, tail(p.log))
		default:
		}
		inNamespace(t, s.ClientNS, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var b []byte
			if b, last = udpAnswer(ctx, IPMIAddr, fmt.Sprint(IPMIPort), ping); last == nil && (len(b) < 9 || b[8] != 0x40) {
				last = fmt.Errorf("answer %x is not a presence pong", b)
			}
		})
		if last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling a daemon's start, not synchronising tests
	}
	t.Fatalf("ipmisim: the BMC did not answer within %s: %v\n%s", ipmiStartTimeout, last, tail(p.log))
}
