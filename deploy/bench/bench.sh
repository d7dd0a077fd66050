#!/usr/bin/env bash
# flowprobe side by side (make bench): flowprobe's daemon and one-shot check,
# a raw Go connect loop, blackbox_exporter and (with CLOUDPROBER=/path) Cloudprober
# on the same loopback listeners, inside a private network namespace whose only
# interface is loopback. Prints a markdown table on standard output.
#
#   N=1000 RATE=1000 DURATION=20s RUNS=3 SCALE="10000 50000 200000" deploy/bench/bench.sh
#   BENCH_TINY=1 deploy/bench/bench.sh     # N=20, SCALE=200, DURATION=3s, RUNS=1: proves it works
#
# Needs root (for the namespace); installs prometheus-blackbox-exporter with
# apt-get when it is missing. Configs and logs stay in $BENCH_DIR (a temporary
# directory by default).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root: it runs in a private network namespace (unshare -n)" >&2
  exit 2
fi

if [ "${BENCH_TINY:-}" = 1 ]; then
  : "${N:=20}" "${SCALE:=200}" "${DURATION:=3s}" "${RUNS:=1}" "${RATE:=200}" \
    "${ONESHOT:=200}" "${SCALE_INTERVAL:=2s}"
fi
: "${N:=1000}" "${SCALE:=10000 50000 200000}" "${DURATION:=20s}" "${RUNS:=3}" "${RATE:=1000}" \
  "${ONESHOT:=10000}" "${SCALE_INTERVAL:=30s}" "${CONCURRENCY:=4}" "${CLOUDPROBER:=}" \
  "${SCALE_GOMEMLIMIT=180MiB}"

BLACKBOX=${BLACKBOX:-/usr/bin/prometheus-blackbox-exporter}
if [ ! -x "$BLACKBOX" ]; then
  echo "bench: installing prometheus-blackbox-exporter" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-blackbox-exporter >&2
  # The package starts its own service; the benchmark runs its own copy.
  systemctl disable --now prometheus-blackbox-exporter >/dev/null 2>&1 || true
fi
if [ -n "$CLOUDPROBER" ] && [ ! -x "$CLOUDPROBER" ]; then
  echo "bench: CLOUDPROBER=$CLOUDPROBER is not an executable" >&2
  exit 2
fi

mkdir -p .build
CGO_ENABLED=0 go build -trimpath -o .build/flowprobe ./cmd/flowprobe
CGO_ENABLED=0 go build -trimpath -o .build/bench ./deploy/bench

dir=${BENCH_DIR:-$(mktemp -d /tmp/flowprobe-bench.XXXXXX)}
mkdir -p "$dir"
echo "bench: configs and logs in $dir" >&2
# Raise the descriptor limit for the listeners and the scale runs.
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true

# shellcheck disable=SC2016 # expanded inside the namespace's shell
exec unshare -n -- bash -c 'ip link set lo up && exec "$@"' bench \
  .build/bench run -dir "$dir" -n "$N" -runs "$RUNS" -rate "$RATE" -duration "$DURATION" \
  -oneshot "$ONESHOT" -concurrency "$CONCURRENCY" -scale "$SCALE" -scale-interval "$SCALE_INTERVAL" \
  -scale-gomemlimit "$SCALE_GOMEMLIMIT" \
  -flowprobe .build/flowprobe -blackbox "$BLACKBOX" -cloudprober "$CLOUDPROBER"
