package report

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/flowprobe/flowprobe/probe"
)

// WriteCatalogList writes the products of the catalog with their titles,
// flow counts and documents.
func WriteCatalogList(w io.Writer, cat *catalog) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRODUCT\tTITLE\tFLOWS\tDOCUMENTS")
	for _, p := range cat.Products {
		docs := make([]string, len(p.Documents))
		for i, d := range p.Documents {
			docs[i] = d.ID
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", p.Name, p.Title, len(p.Flows), strings.Join(docs, ", "))
	}
	tw.Flush()
	_, err := w.Write(b.Bytes())
	return err
}

// flowPeers is "source → destination" or "source → hostname".
func flowPeers(f *probe.Flow) string {
	dst := f.Destination
	if dst == "" {
		dst = f.Hostname
	}
	return f.Source + " → " + dst
}

// portsText is the port list in its text form, "-" for none (ICMP).
func portsText(ports []probe.PortSpec, sep string) string {
	if len(ports) == 0 {
		return "-"
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, sep)
}

// sections groups a product's flows by section, in order of first
// appearance.
func sections(p *probe.Product) (names []string, flows map[string][]*probe.Flow) {
	flows = map[string][]*probe.Flow{}
	for i := range p.Flows {
		f := &p.Flows[i]
		if _, seen := flows[f.Section]; !seen {
			names = append(names, f.Section)
		}
		flows[f.Section] = append(flows[f.Section], f)
	}
	return names, flows
}

// WriteCatalogShow writes one product's documents, roles and flows, a
// table per section with the flows' conditions, footnotes and notes.
func WriteCatalogShow(w io.Writer, p *probe.Product) error {
	var b bytes.Buffer
	multi := len(p.Documents) > 1
	fmt.Fprintf(&b, "%s — %s (%d flows)\n\nDocuments:\n", p.Name, p.Title, len(p.Flows))
	for _, d := range p.Documents {
		fmt.Fprintf(&b, "  %s: %s — %s\n", d.ID, d.File, d.Title)
	}
	fmt.Fprintln(&b, "\nRoles:")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range p.Roles {
		fmt.Fprintf(tw, "  %s\t%s\n", r.Name, r.Description)
	}
	tw.Flush()

	names, bySection := sections(p)
	for _, s := range names {
		fmt.Fprintf(&b, "\n== %s ==\n", s)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		if multi {
			fmt.Fprintln(tw, "  ID\tFLOW\tPROTO\tPORTS\tAPP\tREQUIRED\tREVISIONS\tPURPOSE")
		} else {
			fmt.Fprintln(tw, "  ID\tFLOW\tPROTO\tPORTS\tAPP\tREQUIRED\tPURPOSE")
		}
		for _, f := range bySection[s] {
			ports := portsText(f.Ports, ",")
			if f.Configurable {
				ports += "*"
			}
			app := f.App
			if app == "" {
				app = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t", f.ID, flowPeers(f), f.Protocol, ports, app, f.Required)
			if multi {
				fmt.Fprintf(tw, "%s\t", strings.Join(f.Revisions, ","))
			}
			fmt.Fprintf(tw, "%s\n", f.Purpose)
		}
		tw.Flush()

		var details strings.Builder
		for _, f := range bySection[s] {
			if f.Condition == "" && len(f.Footnotes) == 0 && f.Note == "" && !f.Configurable && len(f.Printed) == 0 {
				continue
			}
			fmt.Fprintf(&details, "  %s\n", f.ID)
			if f.Condition != "" {
				writeField(&details, "condition", f.Condition)
			}
			if f.Configurable {
				writeField(&details, "configurable", "yes: the vendor documents this port as a default that can be changed")
			}
			for _, fn := range f.Footnotes {
				writeField(&details, "footnote", fn)
			}
			if len(f.Printed) > 0 {
				writeField(&details, "printed", f.PrintedNote())
			}
			if f.Note != "" {
				writeField(&details, "note", f.Note)
			}
		}
		if details.Len() > 0 {
			fmt.Fprintf(&b, "\n%s", details.String())
		}
	}
	fmt.Fprintln(&b, "\n* configurable port (the vendor's default)")
	_, err := w.Write(b.Bytes())
	return err
}

// writeField writes "label: text", wrapping text at about 100 columns under
// a hanging indent.
func writeField(b *strings.Builder, label, text string) {
	const indent, width = 20, 100
	line := fmt.Sprintf("      %-*s", indent-6, label+":")
	col := len(line)
	b.WriteString(line)
	for i, word := range strings.Fields(text) {
		if i > 0 && col+1+len(word) > width {
			b.WriteString("\n" + strings.Repeat(" ", indent))
			col = indent
		} else if i > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	b.WriteByte('\n')
}

// WriteCatalogExport writes the flows of products in a format: json, csv
// or markdown.
func WriteCatalogExport(w io.Writer, format string, products []*probe.Product) error {
	switch format {
	case "json":
		return writeCatalogJSON(w, products)
	case "csv":
		return writeCatalogCSV(w, products)
	case "markdown":
		return writeCatalogMarkdown(w, products)
	}
	return fmt.Errorf("unknown export format %q (known: json, csv, markdown)", format)
}

// exportFlow is the JSON form of a catalog flow. Its field names are a
// stable interface for other tools (see docs/catalog.md).
type exportFlow struct {
	Product      string   `json:"product"`
	ID           string   `json:"id"`
	Source       string   `json:"source"`
	Destination  string   `json:"destination"`
	Hostname     string   `json:"hostname"`
	Protocol     string   `json:"protocol"`
	Ports        []any    `json:"ports"` // int for one port; "LOW-HIGH", "dynamic" or "ephemeral"
	Purpose      string   `json:"purpose"`
	Required     string   `json:"required"`
	Condition    string   `json:"condition"`
	Footnotes    []string `json:"footnotes"`
	Section      string   `json:"section"`
	App          string   `json:"app"`
	Revisions    []string `json:"revisions"`
	Note         string   `json:"note"`
	Configurable bool     `json:"configurable"`
	// Printed is what the documents print where the flow checks a
	// corrected value: "udp/25", or "ja: tcp/350" for one revision.
	Printed []string `json:"printed"`
}

func toExport(f *probe.Flow) exportFlow {
	ports := make([]any, 0, len(f.Ports))
	for _, p := range f.Ports {
		if p.Checkable() && !p.IsRange() {
			ports = append(ports, p.Low)
		} else {
			ports = append(ports, p.String())
		}
	}
	footnotes := f.Footnotes
	if footnotes == nil {
		footnotes = []string{}
	}
	revisions := f.Revisions
	if revisions == nil {
		revisions = []string{}
	}
	printed := make([]string, len(f.Printed))
	for i, p := range f.Printed {
		b, _ := p.MarshalText()
		printed[i] = string(b)
	}
	return exportFlow{
		Product: f.Product, ID: f.ID, Source: f.Source, Destination: f.Destination, Hostname: f.Hostname,
		Protocol: string(f.Protocol), Ports: ports, Purpose: f.Purpose, Required: string(f.Required),
		Condition: f.Condition, Footnotes: footnotes, Section: f.Section, App: f.App, Revisions: revisions,
		Note: f.Note, Configurable: f.Configurable, Printed: printed,
	}
}

func writeCatalogJSON(w io.Writer, products []*probe.Product) error {
	out := []exportFlow{}
	for _, p := range products {
		for i := range p.Flows {
			out = append(out, toExport(&p.Flows[i]))
		}
	}
	if err := writeJSON(w, out); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// catalogCSVHeader is the CSV column order. Lists are joined: ports and
// revisions with a space, footnotes with a newline (quoted by the CSV
// writer).
var catalogCSVHeader = []string{"product", "id", "source", "destination", "hostname", "protocol", "ports", "purpose",
	"required", "condition", "footnotes", "section", "app", "revisions", "note", "configurable", "printed"}

func writeCatalogCSV(w io.Writer, products []*probe.Product) error {
	var rows [][]string
	for _, p := range products {
		for i := range p.Flows {
			f := &p.Flows[i]
			ports := ""
			if len(f.Ports) > 0 {
				ports = portsText(f.Ports, " ")
			}
			e := toExport(f)
			rows = append(rows, []string{f.Product, f.ID, f.Source, f.Destination, f.Hostname, string(f.Protocol), ports,
				f.Purpose, string(f.Required), f.Condition, strings.Join(f.Footnotes, "\n"), f.Section, f.App,
				strings.Join(f.Revisions, " "), f.Note, strconv.FormatBool(f.Configurable), strings.Join(e.Printed, "; ")})
		}
	}
	if err := writeCSV(w, catalogCSVHeader, rows); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	return nil
}

func writeCatalogMarkdown(w io.Writer, products []*probe.Product) error {
	var b strings.Builder
	for i, p := range products {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "## %s (`%s`)\n\nDocuments:", mdCell(p.Title), p.Name)
		for _, d := range p.Documents {
			fmt.Fprintf(&b, " `%s` %s;", d.ID, mdCell(d.File))
		}
		b.WriteString("\n")
		names, bySection := sections(p)
		for _, s := range names {
			fmt.Fprintf(&b, "\n### %s\n\n", mdCell(s))
			b.WriteString("| ID | Source | Destination | Protocol | Ports | Required | Purpose | Details |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|\n")
			for _, f := range bySection[s] {
				dst := f.Destination
				if dst == "" {
					dst = "`" + f.Hostname + "`"
				}
				var details []string
				if len(p.Documents) > 1 {
					details = append(details, "Revisions: "+strings.Join(f.Revisions, ", "))
				}
				if f.Condition != "" {
					details = append(details, "When: "+mdCell(f.Condition))
				}
				if f.Configurable {
					details = append(details, "Configurable port")
				}
				for _, fn := range f.Footnotes {
					details = append(details, "Footnote "+mdCell(fn))
				}
				if len(f.Printed) > 0 {
					details = append(details, "Printed: "+mdCell(f.PrintedNote()))
				}
				if f.Note != "" {
					details = append(details, "Note: "+mdCell(f.Note))
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f.ID, f.Source, dst, f.Protocol,
					portsText(f.Ports, ", "), f.Required, mdCell(f.Purpose), strings.Join(details, "<br>"))
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write Markdown: %w", err)
	}
	return nil
}
