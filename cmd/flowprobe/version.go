package main

import (
	"context"
	"fmt"

	"github.com/prometheus/common/version"
)

// addVersion registers `flowprobe version`. The version, revision, branch,
// build user and date come from github.com/prometheus/common/version,
// set at build time with -ldflags -X (see the Makefile).
func addVersion(c *cli) {
	cmd := c.app.Command("version", "Print the version and build information.")
	c.register(cmd, func(context.Context) int {
		fmt.Fprintln(c.stdout, version.Print("flowprobe"))
		return exitOK
	})
}
