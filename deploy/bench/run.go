package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the sizes of one benchmark; bench.sh fills them from the
// environment.
type options struct {
	n, runs, oneshot, concurrency int
	rate                          float64
	duration, scaleInterval       time.Duration
	scale                         []int
	flowprobe, blackbox, cloudp   string
	scaleMemLimit                 string
	dir                           string
}

func runBench(args []string) error {
	var o options
	var scale string
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1000, "TCP and TLS listeners (and targets) each")
	fs.IntVar(&o.runs, "runs", 3, "runs of each figure; the table shows the median and the spread")
	fs.IntVar(&o.oneshot, "oneshot", 10000, "TCP targets of the one-shot check")
	fs.IntVar(&o.concurrency, "concurrency", 4, "connections at once per host, for every prober")
	fs.Float64Var(&o.rate, "rate", 1000, "checks a second of the rate runs")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured time of each rate run")
	fs.DurationVar(&o.scaleInterval, "scale-interval", 30*time.Second, "interval of the scale runs")
	fs.StringVar(&scale, "scale", "10000 50000 200000", "target counts of the scale runs")
	fs.StringVar(&o.flowprobe, "flowprobe", ".build/flowprobe", "flowprobe binary")
	fs.StringVar(&o.blackbox, "blackbox", "/usr/bin/prometheus-blackbox-exporter", "blackbox_exporter binary")
	fs.StringVar(&o.cloudp, "cloudprober", "", "Cloudprober binary (none: not compared)")
	fs.StringVar(&o.scaleMemLimit, "scale-gomemlimit", "", "GOMEMLIMIT of flowprobe serve in the scale runs (none: unset)")
	fs.StringVar(&o.dir, "dir", "", "work directory (configs, logs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for f := range strings.FieldsSeq(scale) {
		var s int
		if _, err := fmt.Sscan(f, &s); err != nil || s < 1 {
			return fmt.Errorf("bad scale %q", f)
		}
		o.scale = append(o.scale, s)
	}
	if o.n < 1 || o.runs < 1 || o.rate <= 0 || o.dir == "" {
		return errors.New("need -n ≥ 1, -runs ≥ 1, -rate > 0 and -dir")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	portsFile := filepath.Join(o.dir, "ports.json")
	stopListen, err := startListeners(self, o.n, portsFile, o.dir)
	if err != nil {
		return err
	}
	defer stopListen()
	ports, _, err := readTargets(portsFile, false, false)
	if err != nil {
		return err
	}
	b := &bench{o: o, counts: "http://" + ports.Control + "/counts", ports: ports}
	floor := floorProber(self, portsFile)
	probers := []prober{floor, flowprobeProber(o.flowprobe), blackboxProber(o.blackbox, self, portsFile)}
	if o.cloudp != "" {
		probers = append(probers, cloudproberProber(o.cloudp))
	}
	report := &report{}
	if err := b.rateRuns(report, probers); err != nil {
		return err
	}
	if err := b.oneshotRuns(report, floor); err != nil {
		return err
	}
	scalers := []prober{flowprobeProber(o.flowprobe)}
	if o.cloudp != "" {
		scalers = append(scalers, cloudproberProber(o.cloudp))
	}
	if err := b.scaleRuns(report, scalers); err != nil {
		return err
	}
	report.print(os.Stdout, o)
	return nil
}

type bench struct {
	o      options
	counts string
	ports  Ports
}

// startListeners starts `bench listen` and waits (bounded) for its ports file.
func startListeners(self string, n int, portsFile, dir string) (func(), error) {
	p, err := startProc([]string{self, "listen", "-n", fmt.Sprint(n), "-ports-file", portsFile, "-max-time", "2h"}, filepath.Join(dir, "listen.log"))
	if err != nil {
		return nil, err
	}
	for range 600 {
		if _, err := os.Stat(portsFile); err == nil {
			return func() { p.stop() }, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, errors.New("the listeners did not come up in 30s")
}

func (b *bench) readCounts() (Counts, error) {
	var c Counts
	resp, err := http.Get(b.counts)
	if err != nil {
		return c, fmt.Errorf("read counts: %w", err)
	}
	defer resp.Body.Close()
	return c, json.NewDecoder(resp.Body).Decode(&c)
}

// proc is a started process with its log file.
type proc struct {
	cmd *exec.Cmd
	log *os.File
}

func startProc(argv []string, logPath string) (*proc, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	return &proc{cmd: cmd, log: log}, nil
}

// stop sends SIGTERM, waits up to 10s, then kills.
func (p *proc) stop() {
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.log.Close()
}

// cpuSeconds is user + system time of pid from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it start past ")".
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	var utime, stime float64
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return (utime + stime) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// rssMiB is VmRSS of pid from /proc/PID/status.
func rssMiB(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb)
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 200, for at most limit.
func waitHTTP(url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer in %s", url, limit)
}

// running is a prober started on a workload.
type running struct {
	main, helper *proc
	metrics      string
}

func (b *bench) launch(p prober, w workload, tag string) (*running, error) {
	dir := filepath.Join(b.o.dir, tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mainArgv, helperArgv, metrics, err := p.start(dir, w)
	if err != nil {
		return nil, err
	}
	r := &running{metrics: metrics}
	if r.main, err = startProc(mainArgv, filepath.Join(dir, "prober.log")); err != nil {
		return nil, err
	}
	if metrics != "" {
		if err := waitHTTP(metrics, 60*time.Second); err != nil {
			r.stop()
			return nil, fmt.Errorf("%s: %w (log in %s)", p.name, err, dir)
		}
	}
	if helperArgv != nil {
		if r.helper, err = startProc(helperArgv, filepath.Join(dir, "helper.log")); err != nil {
			r.stop()
			return nil, err
		}
	}
	return r, nil
}

func (r *running) stop() {
	r.helper.stop()
	r.main.stop()
}
