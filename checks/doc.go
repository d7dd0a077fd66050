// Package checks holds flowprobe's check kinds, one file per kind, each
// registering itself (name, transport, options, value metrics, catalog
// hints) with one call to register; the registry that config validation,
// dispatch, the catalog bindings, the exporter's HELP texts, the JSON Schema
// and the CLI all read; the prologue every check shares (options lookup,
// connect, classification); shared dialing with per-phase timing; and
// Classify, the one place where an error chain becomes a probe.Outcome.
package checks

//go:generate go run ./internal/schemagen ../deploy/config.schema.json
