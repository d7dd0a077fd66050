package main

import (
	"context"
	"fmt"
	"io"

	"github.com/prometheus/common/version"
)

// releaseVersion is the version of this source tree (the VERSION file, a
// test keeps them equal). A build without -ldflags, such as `go run` or
// `go install`, reports it with a "-dev" suffix instead of nothing.
const releaseVersion = "0.1.0"

func init() {
	if version.Version == "" {
		version.Version = releaseVersion + "-dev"
	}
}

// addVersion registers `flowprobe version`. The version, revision, branch,
// build user and date come from github.com/prometheus/common/version,
// set at build time with -ldflags -X (see the Makefile).
func addVersion(c *cli) {
	cmd := c.app.Command("version", "Print the version and build information.")
	c.register(cmd, func(context.Context) int {
		printVersion(c.stdout)
		return exitOK
	})
}

// printVersion writes the version and build information.
func printVersion(w io.Writer) { fmt.Fprintln(w, version.Print("flowprobe")) }
