package main

import "context"

// addValidate registers `flowprobe validate`. Not implemented yet.
func addValidate(c *cli) {
	cmd := c.app.Command("validate", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe validate: not implemented yet\n"))
		return exitUsage
	})
}
