package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUsageAndHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr, exactly once
	}{
		{nil, exitUsage, "usage: flowprobe [<flags>] <command>"},
		{[]string{"--help"}, exitOK, "usage: flowprobe [<flags>] <command>"},
		{[]string{"check", "--help"}, exitOK, "usage: flowprobe check"},
		{[]string{"nope"}, exitUsage, `expected command but got "nope"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		if n := strings.Count(stderr.String(), tc.want); n != 1 {
			t.Errorf("%v: %q appears %d times in:\n%s", tc.args, tc.want, n, stderr.String())
		}
	}
}
