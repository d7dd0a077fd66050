package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
)

// addCatalog registers `flowprobe catalog list|show|export`: the embedded
// vendor port tables, for reading and for other tools.
func addCatalog(c *cli) {
	cmd := c.app.Command("catalog", "Read the embedded vendor port tables.")

	list := cmd.Command("list", "List the products with their titles and flow counts.")
	c.register(list, func(context.Context) int {
		cat, code := loadCatalog(c, "list")
		if cat == nil {
			return code
		}
		return writeOut(c, "list", report.WriteCatalogList(c.stdout, cat))
	})

	show := cmd.Command("show", "Show one product's flows as a table, grouped by the document's sections.")
	showProduct := show.Arg("product", "Product name (see `flowprobe catalog list`).").Required().String()
	c.register(show, func(context.Context) int {
		cat, code := loadCatalog(c, "show")
		if cat == nil {
			return code
		}
		p, ok := cat.Product(*showProduct)
		if !ok {
			return unknownProduct(c, "show", cat, *showProduct)
		}
		return writeOut(c, "show", report.WriteCatalogShow(c.stdout, p))
	})

	export := cmd.Command("export", "Export flows as JSON, CSV or Markdown.")
	format := export.Flag("format", "Output format: json, csv or markdown.").Default("json").Enum("json", "csv", "markdown")
	only := export.Flag("product", "Export only this product.").String()
	c.register(export, func(context.Context) int {
		cat, code := loadCatalog(c, "export")
		if cat == nil {
			return code
		}
		products := cat.Products
		if *only != "" {
			p, ok := cat.Product(*only)
			if !ok {
				return unknownProduct(c, "export", cat, *only)
			}
			products = []*probe.Product{p}
		}
		return writeOut(c, "export", report.WriteCatalogExport(c.stdout, *format, products))
	})

	imp := cmd.Command("import", "Turn a port table kept as CSV (columns protocol, port, source, destination, purpose) into a catalog file to edit; name it in a site config's catalogs.")
	impFile := imp.Arg("file", "CSV file.").Required().String()
	impProduct := imp.Flag("product", "Product name, kebab-case (default: the CSV file's name).").String()
	impTitle := imp.Flag("title", "Product title (default: the product name).").String()
	c.register(imp, func(context.Context) int {
		f, err := os.Open(*impFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe catalog import: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		name := *impProduct
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(*impFile), filepath.Ext(*impFile))
		}
		data, err := catalog.ImportCSV(name, *impTitle, *impFile, f)
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe catalog import: %v\n", err)
			return exitUsage
		}
		_, err = c.stdout.Write(data)
		return writeOut(c, "import", err)
	})
}

func loadCatalog(c *cli, sub string) (*catalog.Catalog, int) {
	cat, err := catalog.Load()
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe catalog %s: load the catalog: %v\n", sub, err)
		return nil, exitUsage
	}
	return cat, exitOK
}

func unknownProduct(c *cli, sub string, cat *catalog.Catalog, name string) int {
	fmt.Fprintf(c.stderr, "flowprobe catalog %s: unknown product %q; the products are: %s\n",
		sub, name, strings.Join(cat.Names(), ", "))
	return exitUsage
}

// writeOut is the exit code of a catalog subcommand that wrote its output
// with err.
func writeOut(c *cli, sub string, err error) int {
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe catalog %s: %v\n", sub, err)
		return exitFailed
	}
	return exitOK
}
