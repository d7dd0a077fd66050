// Command bench is flowprobe's side-by-side benchmark: it measures
// flowprobe's daemon and one-shot check against a raw Go connect loop and
// against the peers (blackbox_exporter, Cloudprober) on the same loopback
// listeners, counting every connection where it lands.
//
// deploy/bench/bench.sh (make bench) builds it and runs `bench run` inside a
// private network namespace whose only interface is loopback. The other
// subcommands are the processes `bench run` starts:
//
//	bench listen  N TCP and N TLS listeners on 127.0.0.1 that count accepted
//	              connections and completed handshakes, with the counts on a
//	              control port
//	bench floor   the raw Go floor: dial (and handshake) and close, at a fixed
//	              rate or flat out, with a fixed concurrency
//	bench drive   plays Prometheus for blackbox_exporter: GET /probe at a
//	              fixed rate over the targets
//
// Every loop is bounded in count and in time, and every address is 127.0.0.1.
package main

import (
	"fmt"
	"os"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: bench run|listen|floor|drive [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runBench(args[1:])
	case "listen":
		err = listenMain(args[1:])
	case "floor":
		err = floorMain(args[1:])
	case "drive":
		err = driveMain(args[1:])
	default:
		err = fmt.Errorf("unknown subcommand %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench "+args[0]+":", err)
		return 1
	}
	return 0
}
