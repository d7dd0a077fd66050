package main

import "context"

// addListen registers `flowprobe listen`. Not implemented yet.
func addListen(c *cli) {
	cmd := c.app.Command("listen", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe listen: not implemented yet\n"))
		return exitUsage
	})
}
