package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// The commands' output in the other tests must not depend on whether the
// test process may open ICMP sockets (root or not, ping_group_range).
func init() { icmpAvailable = func(string) error { return nil } }

func TestValidateWarnsWhenICMPCannotRun(t *testing.T) {
	defer func(old func(string) error) { icmpAvailable = old }(icmpAvailable)
	var asked []string
	icmpAvailable = func(family string) error {
		asked = append(asked, family)
		return errors.New("no ICMP socket: grant CAP_NET_RAW")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "../../deploy/examples/sios-lifekeeper.yml"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: a config is valid even where ICMP cannot run\n%s", code, stderr.String())
	}
	want := "../../deploy/examples/sios-lifekeeper.yml: warning: icmp targets (ip4) cannot run here: no ICMP socket: grant CAP_NET_RAW\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	if strings.Join(asked, ",") != "ip4" {
		t.Errorf("families asked: %v, want ip4 once", asked)
	}
}
