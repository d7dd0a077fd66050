package scheduler

import (
	"fmt"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

func TestShardsCoverEveryTargetExactlyOnce(t *testing.T) {
	var ts []probe.Target
	for i := range 3000 {
		ts = append(ts, target(probe.MakeID("demo", "flow", fmt.Sprintf("h%d.example.org", i%300), 1000+i, probe.TCP, "tcp"), "h"))
	}
	for _, n := range []int{1, 2, 3, 7} {
		seen := map[string]int{}
		for i := range n {
			sh, err := ParseShard(fmt.Sprintf("%d/%d", i, n))
			if err != nil {
				t.Fatal(err)
			}
			part := sh.Filter(ts)
			if n > 1 && (len(part) < len(ts)/n*8/10 || len(part) > len(ts)/n*12/10) {
				t.Errorf("shard %v holds %d of %d targets, want about %d", sh, len(part), len(ts), len(ts)/n)
			}
			for _, tg := range part {
				seen[tg.ID]++
			}
		}
		for _, tg := range ts {
			if seen[tg.ID] != 1 {
				t.Fatalf("%d shards: %s runs on %d of them, want exactly 1", n, tg.ID, seen[tg.ID])
			}
		}
	}
}

func TestShardOfMatchesPrometheusHashmod(t *testing.T) {
	// md5("demo") = fe01ce2a7fbac8fafaed7c982a04e229; its low 8 bytes as a
	// big-endian integer are 0xfaed7c982a04e229.
	if got, want := ShardOf("demo", 1000), int(uint64(0xfaed7c982a04e229)%1000); got != want {
		t.Errorf("ShardOf(demo, 1000) = %d, want %d", got, want)
	}
}

func TestParseShard(t *testing.T) {
	for in, want := range map[string]Shard{"0/1": {0, 1}, "2/3": {2, 3}} {
		if got, err := ParseShard(in); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1", "3/3", "-1/2", "0/0", "a/b", "1/2/3"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) succeeded", bad)
		}
	}
}
