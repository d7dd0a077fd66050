// Package probe is flowprobe's vocabulary: the catalog of vendor flows
// (Flow, Product), the concrete checks planned for one site (Target), what a
// check reports (Result, Outcome, Phase) and the Checker interface every
// check kind implements.
//
// Loading the embedded catalog lives in probe/catalog, and the site
// configuration and the planner in probe/site. probe imports nothing else of
// the project: catalog, site, checks, scheduler and exporter all import it,
// never the reverse.
package probe
