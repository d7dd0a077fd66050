// Package probe is flowprobe's vocabulary: the catalog of vendor flows
// (Flow, Product), the concrete checks planned for one site (Target), what a
// check reports (Result, Outcome, Phase) and the Checker interface every
// check kind implements.
//
// It also loads the embedded catalog (catalog/*.yaml), parses and validates
// the site configuration, and plans targets from flows and hosts. probe
// imports nothing else of the project: checks, scheduler and exporter all
// import it, never the reverse.
package probe
