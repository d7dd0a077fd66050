package site

import (
	"errors"
	"path/filepath"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
)

// CheckConfig parses a site config and plans it against products with b,
// reporting every error of both at once: when the YAML parses, the
// references to the catalog and the check options are checked even if
// some values are wrong, so a user fixes a file in one pass. An error the
// two steps both find is reported once.
//
// prepare, when given, may complete the parsed config before it is planned
// (the CLI sets LocalAddresses).
func CheckConfig(products []*probe.Product, filename string, data []byte, b Binder, prepare ...func(*Config)) (*Config, *PlanResult, error) {
	cfg, errs := parseConfig(filename, data)
	if cfg == nil {
		return nil, nil, joinSorted(errs)
	}
	for _, f := range prepare {
		f(cfg)
	}
	if len(cfg.Catalogs) > 0 {
		var err error
		if products, err = siteCatalogs(products, filename, cfg.Catalogs); err != nil {
			errs = append(errs, unjoin(err)...)
		}
	}
	res, err := PlanProducts(products, cfg, b)
	if err != nil {
		seen := map[string]bool{}
		for _, e := range errs {
			seen[e.Error()] = true
		}
		for _, e := range unjoin(err) {
			if !seen[e.Error()] {
				seen[e.Error()] = true
				errs = append(errs, e)
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, joinSorted(errs)
	}
	return cfg, res, nil
}

// siteCatalogs loads the catalog files a config names (relative to the
// config's directory) and merges them into products.
func siteCatalogs(products []*probe.Product, filename string, files []string) ([]*probe.Product, error) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f
		if !filepath.IsAbs(f) {
			paths[i] = filepath.Join(filepath.Dir(filename), f)
		}
	}
	extra, loadErr := catalog.LoadFiles(paths, products)
	merged, err := catalog.Merge(products, extra)
	if err != nil {
		return products, errors.Join(loadErr, err)
	}
	return merged, loadErr
}

// unjoin returns the errors an errors.Join-style error holds, or err.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
