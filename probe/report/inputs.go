package report

import "github.com/flowprobe/flowprobe/probe"

// The types this package reads from the catalog loader and the planner,
// named once here: when they move out of package probe, only this file
// changes.
type (
	catalog    = probe.Catalog
	planResult = probe.PlanResult
	skip       = probe.Skip
	rule       = probe.Rule
)
