#!/usr/bin/env bash
# flowprobe's whole test suite: formatting, vet, unit tests, and, as root,
# the lab of real servers in a network namespace with the integration tests.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

step "go vet"
go vet ./...
go vet -tags lab ./...
# The deb/rpm builder is a module of its own (nfpm stays out of go.mod).
(cd deploy/package && go vet ./...)
# So is the Grafana dashboard's generator (the Grafana Foundation SDK).
(cd deploy/grafana/gen && go vet ./...)

step "helm (built once into .build/, for the chart tests)"
deploy/helm/helm.sh version --short

race=()
if command -v gcc >/dev/null 2>&1; then race=(-race); fi

step "unit tests"
go test "${race[@]}" -count=1 ./...

step "fuzz (3s per target)"
# What the checks do with a peer's bytes; the seeds are in checks/testdata/fuzz/.
# Every fuzz target of every package runs, so a new one needs no line here.
go test -list '^Fuzz' ./... | awk '/^Fuzz/ { t[n++] = $1 } /^ok / { for (i = 0; i < n; i++) print $2, t[i]; n = 0 }' |
  while read -r pkg target; do
    go test -run '^$' -fuzz "^${target}\$" -fuzztime 3s "$pkg" </dev/null
  done

step "govulncheck"
# Known vulnerabilities in reachable code, from the database the Go module
# proxy serves (deploy/vulncheck/vulncheck.sh says how).
deploy/vulncheck/vulncheck.sh

if [ "$(id -u)" -ne 0 ]; then
  step "integration tests: SKIPPED"
  echo "The integration tests need root: they create network namespaces, firewall rules"
  echo "and start real servers (slapd, chrony, snmpd, tgt, unbound, nginx, openssh)."
  echo "Run ./test.sh as root to run them."
  exit 0
fi

step "lab up"
export FLOWPROBE_LAB=/run/flowprobe-lab
deploy/testlab/lab.sh install
# Set the trap first: a lab that came up only halfway is torn down too.
# FLOWPROBE_KEEP_LAB=1 leaves the lab running after the tests.
if [ "${FLOWPROBE_KEEP_LAB:-}" != 1 ]; then
  trap 'deploy/testlab/lab.sh down' EXIT
fi
deploy/testlab/lab.sh up

step "integration tests"
# deploy/ includes the packages (dpkg -i, upgrade, purge; rpm read by rpm)
# and the image started from its own filesystem.
go test -tags lab -count=1 -p 1 ./...

step "benchmark, tiny (proves make bench works; in its own network namespace)"
BENCH_TINY=1 CLOUDPROBER= deploy/bench/bench.sh >/dev/null
