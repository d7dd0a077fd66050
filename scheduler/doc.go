// Package scheduler decides when checks run: a queue of due times served by
// a bounded pool of workers, each target's runs at a stable offset derived
// from the target's ID, optional jitter, global and
// per-host caps on checks in flight, no overlapping runs of one target,
// reload by diff, and RunOnce for the one-shot CLI. It owns every deadline;
// it does not know Prometheus.
package scheduler
