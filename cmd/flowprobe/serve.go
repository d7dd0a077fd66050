package main

import "context"

// addServe registers `flowprobe serve`. Not implemented yet.
func addServe(c *cli) {
	cmd := c.app.Command("serve", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe serve: not implemented yet\n"))
		return exitUsage
	})
}
