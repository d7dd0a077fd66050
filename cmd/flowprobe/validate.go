package main

import (
	"context"
	"fmt"
	"os"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// addValidate registers `flowprobe validate`: parse each config file and
// plan it against the catalog and the check registry, reporting every error.
func addValidate(c *cli) {
	cmd := c.app.Command("validate", "Check site config files: syntax, catalog references and check options. Exit 0 when all are valid, 2 otherwise.")
	flagFiles := cmd.Flag("config.file", "Site config file to check (repeatable).").PlaceHolder("FILE").Strings()
	argFiles := cmd.Arg("file", "More site config files to check.").Strings()
	c.register(cmd, func(context.Context) int {
		files := append(append([]string{}, *flagFiles...), *argFiles...)
		if len(files) == 0 {
			fmt.Fprintln(c.stderr, "flowprobe validate: no config file given (--config.file FILE or FILE...)")
			return exitUsage
		}
		cat, err := catalog.Load()
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe validate: %v\n", err)
			return exitUsage
		}
		code := exitOK
		for _, f := range files {
			// Unlike plan, validate reads the secrets the config names:
			// each must be readable here, and should be private.
			audit := &checks.SecretAudit{}
			_, res, err := planFileWith(cat, f, checks.Binder{Audit: audit})
			for _, w := range audit.Warnings {
				fmt.Fprintf(c.stderr, "%s: warning: %s\n", f, w)
			}
			if err != nil {
				fmt.Fprintf(c.stderr, "%s: FAILED\n%v\n", f, err)
				code = exitUsage
				continue
			}
			fmt.Fprintf(c.stdout, "%s: OK (%d targets, %d skipped)\n", f, len(res.Targets), len(res.Skipped))
			for _, err := range icmpProblems(res.Targets) {
				fmt.Fprintf(c.stderr, "%s: warning: %v\n", f, err)
			}
		}
		return code
	})
}

// planFile loads a site config and plans it with the check registry,
// reporting the errors of both steps at once, without reading a secret.
func planFile(cat *catalog.Catalog, path string) (*site.Config, *site.PlanResult, error) {
	return planFileWith(cat, path, checks.Binder{})
}

// planFileWith is planFile with binder b.
func planFileWith(cat *catalog.Catalog, path string, b checks.Binder) (*site.Config, *site.PlanResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load config: %w", err)
	}
	return site.CheckConfig(cat.Products, path, data, b, detectLocal)
}
