package catalog

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/probe"
)

// ImportCSV turns a port table kept as CSV — a header naming the columns
// protocol, port (or ports), source, destination and purpose, then one row
// per line of the vendor's table — into a catalog file for product to
// edit: one document (file), the roles the rows name, one flow per row and
// transport ("TCP/UDP" gives two). The result loads without errors; its
// flows are marked required and their section is "Imported from <file>",
// to be corrected by reading the document.
func ImportCSV(product, title, file string, r io.Reader) ([]byte, error) {
	if !catalogKebab.MatchString(product) {
		return nil, fmt.Errorf("import %s: product %q is not kebab-case (a-z, 0-9, -)", file, product)
	}
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("import %s: want a header and at least one row", file)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "ports" {
			h = "port"
		}
		col[h] = i
	}
	for _, need := range []string{"protocol", "port", "source", "destination", "purpose"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("import %s: the header has no %q column (want protocol, port, source, destination, purpose)", file, need)
		}
	}
	if title == "" {
		title = product
	}
	out := importFile{Product: product, Title: title,
		Documents: []importDoc{{ID: "doc", File: path.Base(file), Title: title + " (imported)", Language: "en"}}}
	roles := map[string]bool{}
	ids := map[string]int{}
	var errs []error
	for n, row := range rows[1:] {
		line := n + 2
		cell := func(name string) string {
			if i := col[name]; i < len(row) {
				return strings.TrimSpace(row[i])
			}
			return ""
		}
		src, dst := kebab(cell("source")), kebab(cell("destination"))
		if src == "" || dst == "" {
			errs = append(errs, fmt.Errorf("%s:%d: source and destination are required", file, line))
			continue
		}
		protos := importProtocols(cell("protocol"))
		if len(protos) == 0 {
			errs = append(errs, fmt.Errorf("%s:%d: protocol %q is not TCP, UDP, TCP/UDP or ICMP", file, line, cell("protocol")))
			continue
		}
		var ports []any
		if !slices.Equal(protos, []string{"icmp"}) {
			var err error
			if ports, err = importPorts(cell("port")); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", file, line, err))
				continue
			}
		}
		for _, r := range []string{src, dst} {
			if !roles[r] {
				roles[r] = true
				out.Roles = append(out.Roles, importRole{Name: r, Description: "TODO: describe " + r + "."})
			}
		}
		purpose := cell("purpose")
		if purpose == "" {
			purpose = "TODO"
		}
		for _, proto := range protos {
			f := importFlow{Source: src, Destination: dst, Protocol: proto, Purpose: purpose,
				Required: "required", Section: "Imported from " + path.Base(file)}
			id := src + "-to-" + dst + "-" + proto
			if proto != "icmp" {
				f.Ports = ports
				id += "-" + strings.ReplaceAll(fmt.Sprint(ports[0]), "-", "to")
			}
			ids[id]++
			if k := ids[id]; k > 1 {
				id = fmt.Sprintf("%s-%d", id, k)
			}
			f.ID = id
			out.Flows = append(out.Flows, f)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Imported by `flowprobe catalog import` from %s: read the document and correct\n"+
		"# roles, required/condition, sections, app hints and notes (see docs/catalog.md).\n", path.Base(file))
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	data := b.Bytes()
	// What is written must load as it is.
	if _, perrs := parseCatalogFile(product+".yaml", data, nil); len(perrs) > 0 {
		return nil, fmt.Errorf("import %s: the result does not load: %w", file, errors.Join(perrs...))
	}
	return data, nil
}

type importFile struct {
	Product   string       `yaml:"product"`
	Title     string       `yaml:"title"`
	Documents []importDoc  `yaml:"documents"`
	Roles     []importRole `yaml:"roles"`
	Flows     []importFlow `yaml:"flows"`
}

type importDoc struct {
	ID       string `yaml:"id"`
	File     string `yaml:"file"`
	Title    string `yaml:"title"`
	Language string `yaml:"language"`
}

type importRole struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

type importFlow struct {
	ID          string `yaml:"id"`
	Source      string `yaml:"source"`
	Destination string `yaml:"destination"`
	Protocol    string `yaml:"protocol"`
	Ports       []any  `yaml:"ports,omitempty,flow"`
	Purpose     string `yaml:"purpose"`
	Required    string `yaml:"required"`
	Section     string `yaml:"section"`
}

var nonKebab = regexp.MustCompile(`[^a-z0-9]+`)

// kebab turns a role name such as "App Server" into "app-server".
func kebab(s string) string {
	return strings.Trim(nonKebab.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// importProtocols reads "TCP", "udp", "TCP/UDP", "TCP, UDP" or "ICMP".
func importProtocols(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == '/' || r == ',' || r == ' ' }) {
		if probe.Protocol(p).Valid() && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// importPorts reads "389", "6910-6930" (an en dash too) or "389, 636".
func importPorts(s string) ([]any, error) {
	s = strings.NewReplacer("\u2013", "-", "\u2014", "-", "~", "-").Replace(s)
	var out []any
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		ps, err := probe.ParsePortSpec(item)
		if err != nil {
			return nil, err
		}
		if ps.IsRange() || !ps.Checkable() {
			out = append(out, ps.String())
		} else {
			out = append(out, ps.Low)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no port")
	}
	return out, nil
}
