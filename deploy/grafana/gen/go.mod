module github.com/flowprobe/flowprobe/deploy/grafana/gen

go 1.26.4

require github.com/grafana/grafana-foundation-sdk/go v0.0.22
