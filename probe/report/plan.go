package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/site"
)

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

func skipRows(ss []skip) [][]string {
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, []string{s.Product, s.Flow, s.Source, s.Destination, s.Host, s.Port, string(s.Code), s.Reason})
	}
	return rows
}

func ruleRows(rs []rule) [][]string {
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{string(r.Action), r.Source, r.Destination, string(r.Protocol), r.Ports,
			r.Product, r.Flow, r.SourceRole, r.DestinationRole, string(r.Required), r.Purpose, r.Note})
	}
	return rows
}

// WritePlan writes the targets a plan expands to and the flows it skips,
// in a format: table (the default), json, csv (the targets only) or
// markdown.
func WritePlan(w io.Writer, format string, res *planResult) error {
	switch format {
	case "json":
		out := struct {
			Targets []planTarget       `json:"targets"`
			Skipped []skip             `json:"skipped"`
			Printed []site.PrintedFlow `json:"printed,omitempty"`
		}{Targets: []planTarget{}, Skipped: res.Skipped, Printed: res.Printed}
		if out.Skipped == nil {
			out.Skipped = []skip{}
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
		return writeCSV(w, lower(targetHeader), targetRows(res.Targets))
	case "markdown":
		if err := writeMarkdownTable(w, targetHeader, targetRows(res.Targets)); err != nil {
			return err
		}
		if len(res.Skipped) > 0 {
			if _, err := fmt.Fprintf(w, "\nNot checked:\n\n"); err != nil {
				return err
			}
			if err := writeMarkdownTable(w, skipHeader, skipRows(res.Skipped)); err != nil {
				return err
			}
		}
		if len(res.Printed) == 0 {
			return nil
		}
		if _, err := fmt.Fprintf(w, "\n%s\n\n", printedTitle); err != nil {
			return err
		}
		return writeMarkdownTable(w, printedHeader, printedRows(res.Printed))
	}
	if err := writeTable(w, targetHeader, targetRows(res.Targets)); err != nil {
		return err
	}
	tail := "\n"
	if len(res.Skipped) > 0 {
		tail = " Not checked:\n\n"
	}
	if _, err := fmt.Fprintf(w, "\n%d targets.%s", len(res.Targets), tail); err != nil {
		return err
	}
	if len(res.Skipped) > 0 {
		if err := writeTable(w, skipHeader, skipRows(res.Skipped)); err != nil {
			return err
		}
	}
	if len(res.Printed) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\n%s\n\n", printedTitle); err != nil {
		return err
	}
	return writeTable(w, printedHeader, printedRows(res.Printed))
}

// printedTitle heads the list of planned flows whose vendor document prints
// another transport or port than the one checked.
const printedTitle = "Checked as corrected; the vendor table prints otherwise:"

var printedHeader = []string{"PRODUCT", "FLOW", "PRINTED"}

func printedRows(ps []site.PrintedFlow) [][]string {
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, []string{p.Product, p.Flow, p.Printed})
	}
	return rows
}

// WriteRules writes the firewall request, one rule per line, in a format:
// table (the default), json, csv or markdown.
func WriteRules(w io.Writer, format string, rules []rule) error {
	switch format {
	case "json":
		if rules == nil {
			rules = []rule{}
		}
		return writeJSON(w, struct {
			Rules []rule `json:"rules"`
		}{rules})
	case "csv":
		return writeCSV(w, lower(ruleHeader), ruleRows(rules))
	case "markdown":
		return writeMarkdownTable(w, ruleHeader, ruleRows(rules))
	}
	return writeTable(w, ruleHeader, ruleRows(rules))
}

// lower is the header of a CSV table: the table's header in lower case.
func lower(header []string) []string {
	out := make([]string, len(header))
	for i, h := range header {
		out[i] = strings.ToLower(h)
	}
	return out
}
