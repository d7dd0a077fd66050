package scheduler

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

// Shard is one of Count replicas that split the targets between them:
// replica Index runs the targets whose ID hashes to it. The zero value
// (Count 0) runs everything.
type Shard struct {
	Index, Count int
}

// ParseShard reads "i/n" with 0 <= i < n.
func ParseShard(s string) (Shard, error) {
	is, ns, ok := strings.Cut(s, "/")
	i, errI := strconv.Atoi(is)
	n, errN := strconv.Atoi(ns)
	if !ok || errI != nil || errN != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("parse shard %q: want i/n with 0 <= i < n, such as 0/3", s)
	}
	return Shard{Index: i, Count: n}, nil
}

// String returns "i/n", or "" for the zero Shard.
func (s Shard) String() string {
	if s.Count == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// ShardOf returns the shard of n that owns a target ID: the same rule as
// Prometheus' hashmod relabeling (the low 8 bytes of the ID's MD5, big
// endian, modulo n), so a Prometheus configuration can reproduce it. It is
// independent of Offset's hash, so a shard's targets still spread over the
// whole interval.
func ShardOf(id string, n int) int {
	sum := md5.Sum([]byte(id))
	return int(binary.BigEndian.Uint64(sum[8:]) % uint64(n))
}

// Owns reports whether the shard runs the target with this ID.
func (s Shard) Owns(id string) bool {
	return s.Count <= 1 || ShardOf(id, s.Count) == s.Index
}

// Filter returns the targets the shard owns, in their order.
func (s Shard) Filter(ts []probe.Target) []probe.Target {
	if s.Count <= 1 {
		return ts
	}
	out := make([]probe.Target, 0, len(ts)/s.Count+1)
	for _, t := range ts {
		if s.Owns(t.ID) {
			out = append(out, t)
		}
	}
	return out
}
