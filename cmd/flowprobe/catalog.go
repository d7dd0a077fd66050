package main

import "context"

// addCatalog registers `flowprobe catalog`. Not implemented yet.
func addCatalog(c *cli) {
	cmd := c.app.Command("catalog", "Not implemented yet.").Hidden()
	c.register(cmd, func(context.Context) int {
		c.stderr.Write([]byte("flowprobe catalog: not implemented yet\n"))
		return exitUsage
	})
}
