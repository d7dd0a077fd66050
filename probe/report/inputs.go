package report

import (
	cataloglib "github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// The types this package reads from the catalog loader (probe/catalog) and
// the planner (probe/site), named once here.
type (
	catalog    = cataloglib.Catalog
	planResult = site.PlanResult
	skip       = site.Skip
	rule       = site.Rule
)
