package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
	"github.com/flowprobe/flowprobe/probe/site"
	"github.com/prometheus/common/version"
)

// addPlan registers `flowprobe plan`: the targets a config expands to, the
// flows it does not check and why, or the firewall request.
func addPlan(c *cli) {
	cmd := c.app.Command("plan", "Show the targets a site config expands to and the flows it skips, or (--firewall) the firewall request.")
	file := cmd.Flag("config.file", "Site config file.").PlaceHolder("FILE").String()
	configFileArg(cmd, file)
	format := new(string)
	outputFlag(cmd, format, "table", "json", "csv", "markdown")
	// --format is the older name of --output.
	cmd.Flag("format", "Same as --output.").Hidden().EnumVar(format, "text", "table", "json", "csv", "markdown")
	firewall := cmd.Flag("firewall", "Print the firewall request: one rule per source, destination, protocol and port or range, both directions.").Bool()
	c.register(cmd, func(context.Context) int {
		if *file == "" {
			fmt.Fprintln(c.stderr, "flowprobe plan: no config file given (--config.file FILE)")
			return exitUsage
		}
		cat, err := catalog.Load()
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe plan: %v\n", err)
			return exitUsage
		}
		cfg, res, err := planFile(cat, *file)
		if err != nil {
			fmt.Fprintf(c.stderr, "%v\n", err)
			return exitUsage
		}
		if *firewall {
			err = report.WriteRules(c.stdout, *format, requestHeader(cat, cfg, time.Now()), res.Rules(), res.Skipped)
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

// requestHeader describes a firewall request of cfg made at now.
func requestHeader(cat *catalog.Catalog, cfg *site.Config, now time.Time) report.RequestHeader {
	h := report.RequestHeader{Site: cfg.Site, Config: cfg.File, Generated: now, Version: version.Version}
	for _, pc := range cfg.Products {
		p, ok := cat.Product(pc.Name)
		if !ok {
			continue
		}
		docs := make([]string, len(p.Documents))
		for i, d := range p.Documents {
			docs[i] = d.File
		}
		h.Products = append(h.Products, fmt.Sprintf("%s: %s (%s)", p.Name, p.Title, strings.Join(docs, ", ")))
	}
	return h
}
