package main

import (
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/checks"
)

// The subcommands share their conventions: the config as FILE or
// --config.file, --output names, --version, a positive --timeout, and the
// kind's well-known port for a bare host.
func TestCommandLineConsistency(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout+stderr
	}{
		{[]string{"--version"}, exitOK, "flowprobe, version"},
		{[]string{"check", "--timeout", "0s", "testdata/plan-sios.yml"}, exitUsage, "--timeout 0s: must be positive"},
		{[]string{"check", "--config.file", "testdata/plan-sios.yml", "testdata/plan-sios.yml"}, exitUsage, "give the config file once"},
		{[]string{"serve", "--config.file", "testdata/plan-sios.yml", "testdata/plan-sios.yml"}, exitUsage, "give the config file once"},
		{[]string{"plan", "-o", "text", "testdata/plan-sios.yml"}, exitOK, "PRODUCT"},
		{[]string{"plan", "--output", "csv", "testdata/plan-sios.yml"}, exitOK, "product,flow,"},
		{[]string{"plan", "--format", "json", "testdata/plan-sios.yml"}, exitOK, `"targets"`},
		{[]string{"check", "-o", "yaml", "testdata/plan-sios.yml"}, exitUsage, "enum value must be one of text,table,json,junit,markdown"},
		{[]string{"probe", "tcp", "192.0.2.1", "-o", "table"}, exitUsage, `want host:port`},
	} {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, tc.code, tc.want, stdout, stderr)
		}
	}
	for kind, port := range map[string]int{"ntp": 123, "dns": 53, "ldap": 389, "ssh": 22, "snmp": 161, "iscsi": 3260, "http": 80, "tls": 443} {
		for _, addr := range []string{"192.0.2.1", "[2001:db8::1]", "2001:db8::1"} {
			a := &probeArgs{kind: kind, address: addr, timeout: 1, expect: "allow"}
			if kind == "dns" {
				a.set = []string{"name=example.org"}
			}
			tg, err := probeTarget(a)
			if err != nil || tg.Port != port || strings.Trim(addr, "[]") != tg.Host {
				t.Errorf("probe %s %s: %s:%d %v, want port %d", kind, addr, tg.Host, tg.Port, err, port)
			}
		}
		if k, _ := checks.Lookup(kind); k.DefaultPort != port {
			t.Errorf("%s: DefaultPort %d", kind, k.DefaultPort)
		}
	}
}
