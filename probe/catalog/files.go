package catalog

import (
	"fmt"
	"os"
	"slices"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/internal/yamlnode"
	"go.yaml.in/yaml/v3"
)

// LoadFiles loads a site's own catalog files, in the format of the
// embedded ones and checked as strictly, each named by its path in
// messages. A file whose product is one of base adds to it, and may use
// its roles and document ids. It returns the products it could read
// beside every error.
func LoadFiles(paths []string, base []*probe.Product) ([]*probe.Product, error) {
	var out []*probe.Product
	var errs []error
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("load catalog: %w", err))
			continue
		}
		var head struct {
			Product string `yaml:"product"`
		}
		_ = yaml.Unmarshal(data, &head) // the strict parse reports any problem
		var extends *probe.Product
		if i := slices.IndexFunc(base, func(p *probe.Product) bool { return p.Name == head.Product }); i >= 0 {
			extends = base[i]
		}
		p, perrs := parseCatalogFile(path, data, extends)
		errs = append(errs, perrs...)
		if p != nil && p.Name != "" && len(perrs) == 0 {
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return out, yamlnode.Join(errs)
	}
	return out, nil
}

// Merge returns base with extra merged in by product name: a product of
// extra that base lacks is added; one that base has gets the extra
// product's documents, roles and flows added to its own (a role of the
// same name is the same role). A flow id or document id that the product
// already has is an error placed at the extra flow or file. base is not
// changed.
func Merge(base, extra []*probe.Product) ([]*probe.Product, error) {
	out := slices.Clone(base)
	var errs []error
	for _, x := range extra {
		i := slices.IndexFunc(out, func(p *probe.Product) bool { return p.Name == x.Name })
		if i < 0 {
			out = append(out, x)
			continue
		}
		m := *out[i]
		m.Documents, m.Document = slices.Clone(m.Documents), slices.Clone(m.Document)
		m.Roles, m.Flows = slices.Clone(m.Roles), slices.Clone(m.Flows)
		file := x.Name
		if len(x.Flows) > 0 {
			file = x.Flows[0].File
		}
		for _, d := range x.Documents {
			if slices.ContainsFunc(m.Documents, func(o probe.Document) bool { return o.ID == d.ID }) {
				errs = append(errs, &Error{File: file, Line: 1,
					Msg: fmt.Sprintf("product %q already has a document %q; give this document another id", x.Name, d.ID)})
				continue
			}
			m.Documents = append(m.Documents, d)
			m.Document = append(m.Document, d.File)
		}
		for _, r := range x.Roles {
			if _, ok := m.Role(r.Name); !ok {
				m.Roles = append(m.Roles, r)
			}
		}
		for _, f := range x.Flows {
			if old, dup := m.Flow(f.ID); dup {
				errs = append(errs, &Error{File: f.File, Line: f.Line, Ctx: []string{fmt.Sprintf("flow %q", f.ID)},
					Msg: fmt.Sprintf("product %q already has this flow (%s:%d)", x.Name, old.File, old.Line)})
				continue
			}
			m.Flows = append(m.Flows, f)
		}
		out[i] = &m
	}
	if len(errs) > 0 {
		return nil, yamlnode.Join(errs)
	}
	return out, nil
}
