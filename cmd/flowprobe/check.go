package main

import "context"

// addCheck registers `flowprobe check`. Not implemented yet.
func addCheck(c *cli) {
	cmd := c.app.Command("check", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe check: not implemented yet\n"))
		return exitUsage
	})
}
