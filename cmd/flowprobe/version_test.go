package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/version"
)

func TestVersionPrintsBuildInfo(t *testing.T) {
	old := version.Version
	version.Version = "1.2.3"
	defer func() { version.Version = old }()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "flowprobe, version 1.2.3 ") || !strings.Contains(out, "go version:") {
		t.Fatalf("version output %q, want the version and the build context", out)
	}
}

func TestReleaseVersionIsTheVERSIONFile(t *testing.T) {
	b, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != releaseVersion {
		t.Errorf("VERSION says %q, releaseVersion is %q", got, releaseVersion)
	}
}
