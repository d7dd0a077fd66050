package main

import (
	"context"
	"fmt"

	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
)

// addPlan registers `flowprobe plan`: the targets a config expands to, the
// flows it does not check and why, or the firewall request.
func addPlan(c *cli) {
	cmd := c.app.Command("plan", "Show the targets a site config expands to and the flows it skips, or (--firewall) the firewall request.")
	flagFile := cmd.Flag("config.file", "Site config file.").PlaceHolder("FILE").String()
	argFile := cmd.Arg("file", "Site config file (instead of --config.file).").String()
	format := cmd.Flag("format", "Output format: table, json, csv or markdown.").Default("table").Enum("table", "json", "csv", "markdown")
	firewall := cmd.Flag("firewall", "Print the firewall request: one rule per source, destination, protocol and port or range, both directions.").Bool()
	c.register(cmd, func(context.Context) int {
		file := *flagFile
		switch {
		case file != "" && *argFile != "":
			fmt.Fprintln(c.stderr, "flowprobe plan: give the config file once (--config.file or FILE)")
			return exitUsage
		case file == "":
			file = *argFile
		}
		if file == "" {
			fmt.Fprintln(c.stderr, "flowprobe plan: no config file given (--config.file FILE)")
			return exitUsage
		}
		cat, err := catalog.Load()
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe plan: %v\n", err)
			return exitUsage
		}
		_, res, err := planFile(cat, file)
		if err != nil {
			fmt.Fprintf(c.stderr, "%v\n", err)
			return exitUsage
		}
		if *firewall {
			err = report.WriteRules(c.stdout, *format, res.Rules())
		} else {
			err = report.WritePlan(c.stdout, *format, res)
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe plan: %v\n", err)
			return exitFailed
		}
		return exitOK
	})
}
