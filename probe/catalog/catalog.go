// Package catalog loads the vendor port tables flowprobe ships with (the
// *.yaml files of this directory, embedded in the binary) into products and
// flows of the probe vocabulary. Every file is checked strictly, and every
// error names the file, the line and the flow.
package catalog

import (
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/internal/yamlnode"

	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// embeddedCatalog holds the vendor port tables shipped with flowprobe, one
// file per product (see docs/catalog.md for the format).
//
//go:embed *.yaml
var embeddedCatalog embed.FS

// Catalog is every product's port table.
type Catalog struct {
	Products []*probe.Product // sorted by Name
}

// Load loads the catalog embedded in the binary.
func Load() (*Catalog, error) { return load(embeddedCatalog, "catalog/") }

// LoadFS loads every *.yaml file found in fsys (walked from its root)
// as one product each. It checks every file strictly and reports all errors
// at once, joined with errors.Join; each one is a *Error that names
// the file, the line and, within a flow, the flow's id.
func LoadFS(fsys fs.FS) (*Catalog, error) { return load(fsys, "") }

// load is LoadFS naming each file with prefix before its path in fsys (the
// embedded files are named as in the source tree, catalog/<product>.yaml).
func load(fsys fs.FS, prefix string) (*Catalog, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && path.Ext(p) == ".yaml" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	if len(files) == 0 {
		return nil, errors.New("load catalog: no *.yaml files")
	}
	sort.Strings(files)

	cat := &Catalog{}
	var errs []error
	byName := map[string]string{} // product name → file
	for _, file := range files {
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			errs = append(errs, fmt.Errorf("load catalog: %w", err))
			continue
		}
		p, perrs := parseCatalogFile(prefix+file, data, nil)
		errs = append(errs, perrs...)
		if p == nil || p.Name == "" {
			continue
		}
		if other, dup := byName[p.Name]; dup {
			errs = append(errs, &Error{File: prefix + file, Line: 1,
				Msg: fmt.Sprintf("product %q is also defined in %s", p.Name, other)})
			continue
		}
		byName[p.Name] = prefix + file
		cat.Products = append(cat.Products, p)
	}
	if len(errs) > 0 {
		return nil, yamlnode.Join(errs)
	}
	sort.Slice(cat.Products, func(i, j int) bool { return cat.Products[i].Name < cat.Products[j].Name })
	return cat, nil
}

// Product returns the product with the given name.
func (c *Catalog) Product(name string) (*probe.Product, bool) {
	for _, p := range c.Products {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Names returns the product names in order.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.Products))
	for i, p := range c.Products {
		names[i] = p.Name
	}
	return names
}

// Flows returns every flow of every product, products in name order and
// flows in file order.
func (c *Catalog) Flows() []probe.Flow {
	var out []probe.Flow
	for _, p := range c.Products {
		out = append(out, p.Flows...)
	}
	return out
}

// Error is one problem in a catalog file, placed at file:line and, within
// a flow, naming the flow by its id (or "#N" for the Nth flow when it has
// none).
type Error = yamlnode.Error

var (
	catalogKebab    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	catalogApp      = regexp.MustCompile(`^[a-z0-9]+([a-z0-9.+-]*[a-z0-9])?$`)
	catalogHostname = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]([a-z0-9-]*[a-z0-9])?$`)
	catalogLanguage = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
)

// The keys each mapping of a catalog file may hold.
var (
	catalogProductKeys  = []string{"product", "title", "documents", "roles", "flows"}
	catalogDocumentKeys = []string{"id", "file", "title", "language"}
	catalogRoleKeys     = []string{"name", "description"}
	catalogFlowKeys     = []string{"id", "source", "destination", "hostname", "protocol", "ports", "purpose",
		"required", "condition", "footnotes", "section", "app", "revisions", "note", "configurable", "printed"}
)

// catalogParser walks one file with the shared walker.
type catalogParser struct {
	file string
	w    yamlnode.Walker
}

// flowCtx is the context of a message about flow label.
func flowCtx(label string) []string {
	switch {
	case label == "":
		return nil
	case strings.HasPrefix(label, "#"):
		return []string{"flow " + label}
	}
	return []string{fmt.Sprintf("flow %q", label)}
}

func (p *catalogParser) errorf(n *yaml.Node, flow, format string, args ...any) {
	p.w.Errorf(n, flowCtx(flow), format, args...)
}

// fields checks that n is a mapping with only known, unique keys and
// returns its values by key. what names the mapping in messages; flow is
// the flow context for messages.
func (p *catalogParser) fields(n *yaml.Node, what, flow string, known []string) map[string]*yaml.Node {
	m := p.w.Fields(n, flowCtx(flow), what, known)
	if m == nil {
		return nil
	}
	out := make(map[string]*yaml.Node, len(m.Order))
	for _, k := range m.Order {
		out[k] = m.Value(k)
	}
	return out
}

// str returns the string value of an optional key: "" when absent, and an
// error when it is not a string.
func (p *catalogParser) str(m map[string]*yaml.Node, key, flow string) string {
	n := m[key]
	if n == nil {
		return ""
	}
	s, _ := p.w.String(n, flowCtx(flow), key)
	return s
}

// need is str for a required key; parent locates the message when the key
// is missing.
func (p *catalogParser) need(m map[string]*yaml.Node, parent *yaml.Node, key, flow, what string) string {
	if m[key] == nil {
		p.errorf(parent, flow, "missing %s%s", key, what)
		return ""
	}
	s := p.str(m, key, flow)
	if s == "" && m[key].Tag == "!!str" {
		p.errorf(m[key], flow, "%s is empty", key)
	}
	return s
}

// strings returns an optional list of non-empty strings.
func (p *catalogParser) strings(m map[string]*yaml.Node, key, flow string) []string {
	n := m[key]
	if n == nil {
		return nil
	}
	items, _ := p.w.Strings(n, flowCtx(flow), key, false)
	out := items[:0]
	for _, s := range items {
		if s == "" {
			p.errorf(n, flow, "%s: every item must be a non-empty string", key)
			continue
		}
		out = append(out, s)
	}
	return out
}

// list returns the items of a required, non-empty list.
func (p *catalogParser) list(m map[string]*yaml.Node, parent *yaml.Node, key string) []*yaml.Node {
	n := m[key]
	if n == nil {
		p.errorf(parent, "", "missing %s", key)
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "", "%s must be a list", key)
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, "", "%s is empty", key)
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, item := range n.Content {
		items[i] = yamlnode.Resolve(item)
	}
	return items
}

// parseCatalogFile reads one catalog file. It returns the product (possibly
// partial) and every error found. With base, the file adds to that product:
// base's roles and document ids count as declared.
func parseCatalogFile(file string, data []byte, base *probe.Product) (*probe.Product, []error) {
	p := &catalogParser{file: file, w: yamlnode.Walker{File: file}}
	root, err := yamlnode.Parse(file, data, "a catalog file")
	if err != nil {
		var ye *Error
		if errors.As(err, &ye) && ye.Syntax() {
			ye.Msg = "invalid YAML: " + ye.Msg
		}
		return nil, []error{err}
	}
	if root == nil {
		p.errorf(nil, "", "empty catalog file")
		return nil, p.w.Errs
	}
	top := p.fields(root, "a catalog file", "", catalogProductKeys)
	if top == nil {
		return nil, p.w.Errs
	}
	prod := &probe.Product{}
	prod.Name = p.need(top, root, "product", "", "")
	if prod.Name != "" {
		if !catalogKebab.MatchString(prod.Name) {
			p.errorf(top["product"], "", "product %q is not kebab-case (a-z, 0-9, -)", prod.Name)
		} else if want := strings.TrimSuffix(path.Base(file), ".yaml"); prod.Name != want {
			p.errorf(top["product"], "", "product %q does not match the file name %q", prod.Name, path.Base(file))
		}
	}
	prod.Title = p.need(top, root, "title", "", "")

	docIDs := map[string]bool{}
	roles := map[string]bool{}
	if base != nil {
		for _, d := range base.Documents {
			docIDs[d.ID] = true
		}
		for _, r := range base.Roles {
			roles[r.Name] = true
		}
	}
	for _, n := range p.list(top, root, "documents") {
		m := p.fields(n, "document", "", catalogDocumentKeys)
		if m == nil {
			continue
		}
		d := probe.Document{
			ID:       p.need(m, n, "id", "", " in document"),
			File:     p.need(m, n, "file", "", " in document"),
			Title:    p.need(m, n, "title", "", " in document"),
			Language: p.need(m, n, "language", "", " in document"),
		}
		switch {
		case d.ID == "":
		case !catalogKebab.MatchString(d.ID):
			p.errorf(m["id"], "", "document id %q is not kebab-case (a-z, 0-9, -)", d.ID)
		case docIDs[d.ID]:
			p.errorf(m["id"], "", "duplicate document id %q", d.ID)
		}
		if d.Language != "" && !catalogLanguage.MatchString(d.Language) {
			p.errorf(m["language"], "", "document %q: language %q is not a language tag such as \"en\" or \"ja\"", d.ID, d.Language)
		}
		docIDs[d.ID] = true
		prod.Documents = append(prod.Documents, d)
		prod.Document = append(prod.Document, d.File)
	}

	var roleNodes []*yaml.Node
	if base == nil || top["roles"] != nil {
		roleNodes = p.list(top, root, "roles") // a file adding to a product may use its roles only
	}
	for _, n := range roleNodes {
		m := p.fields(n, "role", "", catalogRoleKeys)
		if m == nil {
			continue
		}
		r := probe.Role{Name: p.need(m, n, "name", "", " in role")}
		r.Description = p.need(m, n, "description", "", fmt.Sprintf(" in role %q", r.Name))
		switch {
		case r.Name == "":
		case !catalogKebab.MatchString(r.Name):
			p.errorf(m["name"], "", "role %q is not kebab-case (a-z, 0-9, -)", r.Name)
		case roles[r.Name]:
			p.errorf(m["name"], "", "duplicate role %q", r.Name)
		}
		roles[r.Name] = true
		prod.Roles = append(prod.Roles, r)
	}

	ids := map[string]int{} // flow id → line of its first definition
	for i, n := range p.list(top, root, "flows") {
		f, ok := p.flow(n, i, prod, roles, docIDs)
		if !ok {
			continue
		}
		if first, dup := ids[f.ID]; dup {
			p.errorf(n, f.ID, "duplicate flow id (first defined on line %d)", first)
			continue
		}
		ids[f.ID] = n.Line
		prod.Flows = append(prod.Flows, f)
	}
	return prod, p.w.Errs
}

// flow reads and checks the i-th flow. ok is false when it has no usable id.
func (p *catalogParser) flow(n *yaml.Node, i int, prod *probe.Product, roles, docs map[string]bool) (probe.Flow, bool) {
	label := fmt.Sprintf("#%d", i+1)
	if n.Kind == yaml.MappingNode {
		// Find the id first so that every message names the flow.
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], n.Content[j+1]; k.Value == "id" && yamlnode.IsString(yamlnode.Resolve(v)) && yamlnode.Resolve(v).Value != "" {
				label = yamlnode.Resolve(v).Value
				break
			}
		}
	}
	m := p.fields(n, "flow", label, catalogFlowKeys)
	if m == nil {
		return probe.Flow{}, false
	}
	f := probe.Flow{Product: prod.Name, File: p.file, Line: n.Line}
	f.ID = p.need(m, n, "id", label, "")
	if f.ID != "" && !catalogKebab.MatchString(f.ID) {
		p.errorf(m["id"], label, "id is not kebab-case (a-z, 0-9, -)")
	}

	f.Source = p.need(m, n, "source", label, "")
	if f.Source != "" && !roles[f.Source] {
		p.errorf(m["source"], label, "source %q is not a declared role", f.Source)
	}
	f.Destination = p.str(m, "destination", label)
	f.Hostname = p.str(m, "hostname", label)
	switch {
	case m["destination"] != nil && m["hostname"] != nil:
		p.errorf(m["hostname"], label, "has both destination and hostname; give one")
	case m["destination"] == nil && m["hostname"] == nil:
		p.errorf(n, label, "missing destination or hostname")
	case f.Destination != "" && !roles[f.Destination]:
		p.errorf(m["destination"], label, "destination %q is not a declared role", f.Destination)
	case f.Hostname != "" && !catalogHostname.MatchString(f.Hostname):
		p.errorf(m["hostname"], label, "hostname %q is not a lower-case DNS name", f.Hostname)
	}

	proto := p.need(m, n, "protocol", label, "")
	f.Protocol = probe.Protocol(proto)
	if proto != "" && !f.Protocol.Valid() {
		p.errorf(m["protocol"], label, "protocol %q is not tcp, udp or icmp", proto)
	}
	f.Ports = p.ports(m, n, label, f.Protocol)

	f.Purpose = p.need(m, n, "purpose", label, "")
	req := p.need(m, n, "required", label, "")
	f.Required = probe.Requirement(req)
	if req != "" && !f.Required.Valid() {
		p.errorf(m["required"], label, "required %q is not required, optional or conditional", req)
	}
	f.Condition = p.str(m, "condition", label)
	switch {
	case f.Required == probe.Conditional && f.Condition == "":
		p.errorf(n, label, "required is conditional but no condition is given")
	case f.Required != probe.Conditional && f.Required.Valid() && m["condition"] != nil:
		p.errorf(m["condition"], label, "condition given but required is %q, not conditional", f.Required)
	}
	f.Footnotes = p.strings(m, "footnotes", label)
	f.Section = p.need(m, n, "section", label, "")
	f.App = p.str(m, "app", label)
	if f.App != "" && !catalogApp.MatchString(f.App) {
		p.errorf(m["app"], label, "app %q is not a lower-case protocol name", f.App)
	}
	f.Revisions = p.strings(m, "revisions", label)
	if m["revisions"] != nil && len(f.Revisions) == 0 && m["revisions"].Kind == yaml.SequenceNode {
		p.errorf(m["revisions"], label, "revisions is empty; leave it out to mean every document")
	}
	seen := map[string]bool{}
	for _, r := range f.Revisions {
		if !docs[r] {
			p.errorf(m["revisions"], label, "revision %q is not a declared document id", r)
		} else if seen[r] {
			p.errorf(m["revisions"], label, "revision %q listed twice", r)
		}
		seen[r] = true
	}
	if m["revisions"] == nil {
		for _, d := range prod.Documents {
			f.Revisions = append(f.Revisions, d.ID)
		}
	}
	f.Note = p.str(m, "note", label)
	if c := m["configurable"]; c != nil {
		f.Configurable, _ = p.w.Bool(c, flowCtx(label), "configurable")
	}
	if f.Footnotes == nil {
		f.Footnotes = []string{}
	}
	f.Printed = p.printed(m["printed"], label, &f)
	return f, f.ID != ""
}

// ports reads a flow's port list: required and non-empty for tcp and udp,
// absent for icmp.
func (p *catalogParser) ports(m map[string]*yaml.Node, n *yaml.Node, label string, proto probe.Protocol) []probe.PortSpec {
	pn := m["ports"]
	if proto == probe.ICMP {
		if pn != nil {
			p.errorf(pn, label, "icmp flows have no ports")
		}
		return nil
	}
	if pn == nil {
		if proto.Valid() {
			p.errorf(n, label, "missing ports")
		}
		return nil
	}
	if pn.Kind != yaml.SequenceNode {
		p.errorf(pn, label, "ports must be a list")
		return nil
	}
	if len(pn.Content) == 0 {
		p.errorf(pn, label, "ports is empty")
		return nil
	}
	var out []probe.PortSpec
	seen := map[string]bool{}
	for _, item := range pn.Content {
		item = yamlnode.Resolve(item)
		if item.Kind != yaml.ScalarNode || (item.Tag != "!!int" && item.Tag != "!!str") {
			p.errorf(item, label, "ports: %q is not a port, a LOW-HIGH range, \"dynamic\" or \"ephemeral\"", item.Value)
			continue
		}
		ps, err := probe.ParsePortSpec(item.Value)
		if err != nil {
			hint := ""
			if strings.ContainsAny(item.Value, "\u2013\u2014\u301c\uff5e") {
				hint = " (write a range with an ASCII hyphen: LOW-HIGH)"
			}
			p.errorf(item, label, "ports: %v%s", err, hint)
			continue
		}
		if seen[ps.String()] {
			p.errorf(item, label, "ports: %s listed twice", ps)
			continue
		}
		seen[ps.String()] = true
		out = append(out, ps)
	}
	return out
}
