package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/flowprobe/flowprobe/probe"
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
		cat, err := probe.LoadCatalog()
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
			err = writeRules(c.stdout, *format, res.Rules)
		} else {
			err = writePlan(c.stdout, *format, res)
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe plan: %v\n", err)
			return exitFailed
		}
		return exitOK
	})
}

// planTarget is the JSON form of a planned target.
type planTarget struct {
	ID              string            `json:"id"`
	Product         string            `json:"product"`
	Flow            string            `json:"flow"`
	Source          string            `json:"source"`
	Destination     string            `json:"destination"`
	Host            string            `json:"host"`
	Port            int               `json:"port,omitempty"`
	Protocol        probe.Protocol    `json:"protocol"`
	Check           string            `json:"check"`
	IntervalSeconds float64           `json:"interval_seconds"`
	TimeoutSeconds  float64           `json:"timeout_seconds"`
	Expect          probe.Expect      `json:"expect"`
	Required        probe.Requirement `json:"required"`
}

var targetHeader = []string{"PRODUCT", "FLOW", "SOURCE", "DESTINATION", "ADDRESS", "PORT", "PROTOCOL", "CHECK", "INTERVAL", "TIMEOUT", "EXPECT", "REQUIRED"}

var skipHeader = []string{"PRODUCT", "FLOW", "SOURCE", "DESTINATION", "HOST", "PORT", "CODE", "REASON"}

var ruleHeader = []string{"ACTION", "SOURCE", "DESTINATION", "PROTOCOL", "PORTS", "PRODUCT", "FLOW", "SOURCE_ROLE", "DESTINATION_ROLE", "REQUIRED", "PURPOSE", "NOTE"}

func targetRows(ts []probe.Target) [][]string {
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		port := ""
		if t.Port != 0 {
			port = strconv.Itoa(t.Port)
		}
		rows = append(rows, []string{t.Product, t.Flow, t.Source, t.Destination, t.Host, port, string(t.Protocol),
			t.Check, t.Interval.String(), t.Timeout.String(), string(t.Expect), string(t.Required)})
	}
	return rows
}

func skipRows(ss []probe.Skip) [][]string {
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, []string{s.Product, s.Flow, s.Source, s.Destination, s.Host, s.Port, string(s.Code), s.Reason})
	}
	return rows
}

func ruleRows(rs []probe.Rule) [][]string {
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{string(r.Action), r.Source, r.Destination, string(r.Protocol), r.Ports,
			r.Product, r.Flow, r.SourceRole, r.DestinationRole, string(r.Required), r.Purpose, r.Note})
	}
	return rows
}

func writePlan(w io.Writer, format string, res *probe.PlanResult) error {
	switch format {
	case "json":
		out := struct {
			Targets []planTarget `json:"targets"`
			Skipped []probe.Skip `json:"skipped"`
		}{Targets: []planTarget{}, Skipped: res.Skipped}
		if out.Skipped == nil {
			out.Skipped = []probe.Skip{}
		}
		for _, t := range res.Targets {
			out.Targets = append(out.Targets, planTarget{
				ID: t.ID, Product: t.Product, Flow: t.Flow, Source: t.Source, Destination: t.Destination,
				Host: t.Host, Port: t.Port, Protocol: t.Protocol, Check: t.Check,
				IntervalSeconds: t.Interval.Seconds(), TimeoutSeconds: t.Timeout.Seconds(),
				Expect: t.Expect, Required: t.Required,
			})
		}
		return writeJSON(w, out)
	case "csv":
		// One CSV table: the targets. Skips have their own shape; use json
		// or table to see them.
		return writeCSV(w, targetHeader, targetRows(res.Targets))
	case "markdown":
		if err := writeMarkdown(w, targetHeader, targetRows(res.Targets)); err != nil {
			return err
		}
		if len(res.Skipped) == 0 {
			return nil
		}
		fmt.Fprintf(w, "\nNot checked:\n\n")
		return writeMarkdown(w, skipHeader, skipRows(res.Skipped))
	}
	if err := writeTable(w, targetHeader, targetRows(res.Targets)); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d targets.", len(res.Targets))
	if len(res.Skipped) == 0 {
		_, err := fmt.Fprintln(w)
		return err
	}
	fmt.Fprintf(w, " Not checked:\n\n")
	return writeTable(w, skipHeader, skipRows(res.Skipped))
}

func writeRules(w io.Writer, format string, rules []probe.Rule) error {
	switch format {
	case "json":
		if rules == nil {
			rules = []probe.Rule{}
		}
		return writeJSON(w, struct {
			Rules []probe.Rule `json:"rules"`
		}{rules})
	case "csv":
		return writeCSV(w, ruleHeader, ruleRows(rules))
	case "markdown":
		return writeMarkdown(w, ruleHeader, ruleRows(rules))
	}
	return writeTable(w, ruleHeader, ruleRows(rules))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	lower := make([]string, len(header))
	for i, h := range header {
		lower[i] = strings.ToLower(h)
	}
	cw.Write(lower)
	cw.WriteAll(rows)
	return cw.Error()
}

func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			if c == "" {
				c = "-"
			}
			cells[i] = c
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

var markdownEscaper = strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;")

func writeMarkdown(w io.Writer, header []string, rows [][]string) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("|")
		for _, c := range r {
			b.WriteString(" " + markdownEscaper.Replace(c) + " |")
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
