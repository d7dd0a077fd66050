// Package checks holds flowprobe's check kinds, one file per kind, each
// implementing probe.Checker; the registry of kind names that config
// validation, dispatch, docs and the CLI all use; shared dialing with
// per-phase timing; and Classify, the one place where an error chain becomes
// a probe.Outcome.
package checks

//go:generate go run ./internal/schemagen ../deploy/config.schema.json
