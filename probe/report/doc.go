// Package report writes what flowprobe tells people and other tools about
// a plan, a catalog and the results of checks. It holds every report and
// every escaper they use, so that no output format is written twice.
//
// The reports and their users:
//
//   - Result: the JSON form of one target's latest result, read by other
//     tools. `flowprobe probe --output json`, `flowprobe check --output
//     json` and the exporter's /api/v1/results all write it.
//   - WriteResultText: one result for a person (`flowprobe probe`).
//   - Check: the outcome of one `flowprobe check` run, as text, JSON,
//     Markdown or JUnit XML (for CI systems).
//   - WritePlan and WriteRules: the targets and skips a site config plans
//     (`flowprobe plan`), and the firewall request (`flowprobe plan
//     --firewall`), as a table, JSON, CSV or Markdown.
//   - WriteCatalogList, WriteCatalogShow and WriteCatalogExport: the
//     embedded port tables (`flowprobe catalog list|show|export`).
//
// Escaping has one place per format (escape.go): Sanitize for text that
// reaches a terminal, mdCell for Markdown, and encoding/json, encoding/csv
// and encoding/xml for the others. Every string a peer supplied (reasons,
// banners, error texts, details) goes through Sanitize before it is
// written as text, Markdown or a JUnit message, so no byte a peer sent
// reaches a terminal raw.
package report
