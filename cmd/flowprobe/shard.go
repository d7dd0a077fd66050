package main

import (
	"github.com/alecthomas/kingpin/v2"

	"github.com/flowprobe/flowprobe/scheduler"
)

// shardValue is the kingpin value of --shard.
type shardValue struct{ s *scheduler.Shard }

func (v shardValue) Set(s string) error {
	sh, err := scheduler.ParseShard(s)
	if err != nil {
		return err
	}
	*v.s = sh
	return nil
}

func (v shardValue) String() string { return v.s.String() }

// addShardFlag registers --shard on cmd.
func addShardFlag(cmd *kingpin.CmdClause, s *scheduler.Shard) {
	cmd.Flag("shard", "i/n: run only the targets whose ID hashes to shard i of n (as Prometheus' hashmod), for n replicas that split a site.").
		PlaceHolder("i/n").SetValue(shardValue{s})
}

// sharded wraps a configuration loader so that it keeps the targets of
// one shard only.
func sharded(load func() (*planned, error), s scheduler.Shard) func() (*planned, error) {
	if s.Count <= 1 {
		return load
	}
	return func() (*planned, error) {
		p, err := load()
		if err != nil {
			return nil, err
		}
		p.targets = s.Filter(p.targets)
		return p, nil
	}
}
