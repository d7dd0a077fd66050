package main

import "context"

// addProbe registers `flowprobe probe`. Not implemented yet.
func addProbe(c *cli) {
	cmd := c.app.Command("probe", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe probe: not implemented yet\n"))
		return exitUsage
	})
}
