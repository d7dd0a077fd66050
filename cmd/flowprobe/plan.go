package main

import "context"

// addPlan registers `flowprobe plan`. Not implemented yet.
func addPlan(c *cli) {
	cmd := c.app.Command("plan", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe plan: not implemented yet\n"))
		return exitUsage
	})
}
