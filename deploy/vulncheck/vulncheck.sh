#!/usr/bin/env bash
# Scan flowprobe's reachable code for known vulnerabilities with govulncheck,
# offline: the vulnerability database is built from the OSV files of the
# golang.org/x/vulndb module, which the Go module proxy serves like any
# module, so no host other than the proxy is needed.
#
#   deploy/vulncheck/vulncheck.sh            # scan ./... of the main module
#
# Raise VULNDB_VERSION (`go list -m -versions golang.org/x/vulndb` lists
# none: use `go list -m golang.org/x/vulndb@latest`) to scan against newer
# reports. Exit status: govulncheck's (0 none found, 3 vulnerable code
# reachable), 1 on any other failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The scan is of the toolchain go.mod names (its `toolchain` line), which
# the release builds use too (Makefile): the standard library's own fixes
# count. The Go module proxy serves toolchains like modules.
export GOTOOLCHAIN=${GOTOOLCHAIN_SCAN:-auto}

VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:-v1.1.4}
db=.build/vulndb-$VULNDB_VERSION

if [ ! -f "$db/index/db.json" ]; then
	dir=$(go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$dir/data/osv" ] || { echo "vulncheck: no data/osv in golang.org/x/vulndb@$VULNDB_VERSION" >&2; exit 1; }
	rm -rf "$db.tmp"
	go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$dir/data/osv" -out "$db.tmp"
	mv "$db.tmp" "$db"
fi
echo "vulncheck: database golang.org/x/vulndb@$VULNDB_VERSION, govulncheck $GOVULNCHECK_VERSION, $(go env GOVERSION)"
exec go run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" -db "file://$PWD/$db" ./...
