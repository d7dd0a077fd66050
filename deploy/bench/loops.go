package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// target is one listener: its port and whether it speaks TLS.
type target struct {
	port int
	tls  bool
}

// readTargets reads the ports file of `bench listen` and returns its
// listeners interleaved (tcp, tls, tcp, ...), or only the TCP or only the
// TLS ones.
func readTargets(path string, tcpOnly, tlsOnly bool) (Ports, []target, error) {
	var p Ports
	data, err := os.ReadFile(path)
	if err != nil {
		return p, nil, fmt.Errorf("read ports: %w", err)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, nil, fmt.Errorf("read ports %s: %w", path, err)
	}
	var ts []target
	for i, port := range p.TCP {
		if !tlsOnly {
			ts = append(ts, target{port: port})
		}
		if !tcpOnly && i < len(p.TLS) {
			ts = append(ts, target{port: p.TLS[i], tls: true})
		}
	}
	if len(ts) == 0 {
		return p, nil, fmt.Errorf("%s lists no listeners", path)
	}
	return p, ts, nil
}

// pace runs job(k) for k = 0..count-1 on concurrency workers: at rate jobs
// a second on a fixed grid (worker w takes the slots w, w+concurrency, ...),
// or as fast as the workers go when rate is 0. It returns when the jobs are
// done or ctx ends.
func pace(ctx context.Context, rate float64, count, concurrency int, job func(k int)) {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := w + i*concurrency
				if rate == 0 {
					k = int(next.Add(1) - 1)
				}
				if k >= count || ctx.Err() != nil {
					return
				}
				if rate > 0 {
					due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-ctx.Done():
							t.Stop()
							return
						case <-t.C:
						}
					}
				}
				job(k)
			}
		})
	}
	wg.Wait()
}

// loopFlags are the flags floor and drive share.
type loopFlags struct {
	portsFile   string
	rate        float64
	count       int
	concurrency int
	maxTime     time.Duration
	tcpOnly     bool
	tlsOnly     bool
}

func parseLoop(name string, args []string, extra func(*flag.FlagSet)) (loopFlags, error) {
	var f loopFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&f.portsFile, "ports-file", "", "ports file of bench listen")
	fs.Float64Var(&f.rate, "rate", 1000, "connections a second (0: flat out)")
	fs.IntVar(&f.count, "count", 1000, "connections in all")
	fs.IntVar(&f.concurrency, "concurrency", 4, "connections at once, at most")
	fs.DurationVar(&f.maxTime, "max-time", 10*time.Minute, "stop after this long at the latest")
	fs.BoolVar(&f.tcpOnly, "tcp-only", false, "only the TCP listeners")
	fs.BoolVar(&f.tlsOnly, "tls-only", false, "only the TLS listeners")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.concurrency < 1 || f.count < 0 || f.rate < 0 || (f.tcpOnly && f.tlsOnly) {
		return f, fmt.Errorf("need -concurrency ≥ 1, -count ≥ 0, -rate ≥ 0 and at most one of -tcp-only and -tls-only")
	}
	return f, nil
}

func loopContext(maxTime time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	ctx, cancel := context.WithTimeout(ctx, maxTime)
	return ctx, func() { cancel(); stop() }
}

// floorMain is the raw Go floor: a plain loop that dials each listener in
// turn, completes the TLS handshake on the TLS ones, and closes.
func floorMain(args []string) error {
	f, err := parseLoop("floor", args, nil)
	if err != nil {
		return err
	}
	_, ts, err := readTargets(f.portsFile, f.tcpOnly, f.tlsOnly)
	if err != nil {
		return err
	}
	ctx, cancel := loopContext(f.maxTime)
	defer cancel()
	conf := &tls.Config{InsecureSkipVerify: true}
	var failed atomic.Int64
	pace(ctx, f.rate, f.count, f.concurrency, func(k int) {
		t := ts[k%len(ts)]
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(t.port), 2*time.Second)
		if err != nil {
			failed.Add(1)
			return
		}
		defer c.Close()
		if t.tls {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if tls.Client(c, conf).Handshake() != nil {
				failed.Add(1)
			}
		}
	})
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "bench floor: %d connections failed\n", n)
	}
	return nil
}

// driveMain plays Prometheus for blackbox_exporter: one GET /probe per
// slot, module tcp or tls after the listener, body read and dropped.
func driveMain(args []string) error {
	var base string
	f, err := parseLoop("drive", args, func(fs *flag.FlagSet) {
		fs.StringVar(&base, "url", "http://127.0.0.1:9115", "blackbox_exporter's base URL")
	})
	if err != nil {
		return err
	}
	_, ts, err := readTargets(f.portsFile, f.tcpOnly, f.tlsOnly)
	if err != nil {
		return err
	}
	ctx, cancel := loopContext(f.maxTime)
	defer cancel()
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: f.concurrency, Proxy: nil},
	}
	var failed atomic.Int64
	pace(ctx, f.rate, f.count, f.concurrency, func(k int) {
		t := ts[k%len(ts)]
		module := "tcp_connect"
		if t.tls {
			module = "tls"
		}
		url := fmt.Sprintf("%s/probe?module=%s&target=127.0.0.1:%d", base, module, t.port)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			failed.Add(1)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			failed.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "bench drive: %d probes failed\n", n)
	}
	return nil
}
