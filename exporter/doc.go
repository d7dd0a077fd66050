// Package exporter keeps the latest result of every target and serves it:
// a Prometheus collector that builds the metrics at scrape time from a
// snapshot (so removed targets leave no stale series), the HTTP routes of
// `flowprobe serve`, the JSON API and the status page. It does not import
// checks.
package exporter
