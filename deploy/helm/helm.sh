#!/bin/sh
# Runs helm, building it once into .build/ from its Go module (kept out of
# flowprobe's go.mod). The chart tests and ./test.sh use it:
#   deploy/helm/helm.sh lint --strict deploy/helm/flowprobe
set -eu
version=v3.22.0
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/.build/helm-$version/helm
if [ ! -x "$bin" ]; then
	GOBIN=$root/.build/helm-$version go install "helm.sh/helm/v3/cmd/helm@$version"
fi
exec "$bin" "$@"
