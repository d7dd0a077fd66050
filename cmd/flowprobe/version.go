package main

import "context"

// addVersion registers `flowprobe version`. Not implemented yet.
func addVersion(c *cli) {
	cmd := c.app.Command("version", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe version: not implemented yet\n"))
		return exitUsage
	})
}
