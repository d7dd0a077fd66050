package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// report holds every sample by table, row and column, in first-seen order.
type report struct {
	tables []*table
}

type table struct {
	title, note string
	columns     []string
	rows        []string
	samples     map[string]map[string][]float64 // row → column → runs
}

func (r *report) table(title, note string, columns ...string) *table {
	for _, t := range r.tables {
		if t.title == title {
			return t
		}
	}
	t := &table{title: title, note: note, columns: columns, samples: map[string]map[string][]float64{}}
	r.tables = append(r.tables, t)
	return t
}

func (t *table) add(row string, values ...float64) {
	if t.samples[row] == nil {
		t.samples[row] = map[string][]float64{}
		t.rows = append(t.rows, row)
	}
	for i, v := range values {
		t.samples[row][t.columns[i]] = append(t.samples[row][t.columns[i]], v)
	}
}

// cell is the median of the runs, with the spread (min–max) when there
// are several.
func cell(vs []float64) string {
	if len(vs) == 0 {
		return "–"
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 || s[0] == s[len(s)-1] {
		return num(med)
	}
	return fmt.Sprintf("%s (%s–%s)", num(med), num(s[0]), num(s[len(s)-1]))
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func (r *report) print(w io.Writer, o options) {
	fmt.Fprintf(w, "\n# flowprobe side by side, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "N=%d, rate=%g/s, concurrency=%d, duration=%s, runs=%d (median, spread min–max)\n", o.n, o.rate, o.concurrency, o.duration, o.runs)
	for _, t := range r.tables {
		fmt.Fprintf(w, "\n### %s\n\n%s\n\n| |", t.title, t.note)
		for _, c := range t.columns {
			fmt.Fprintf(w, " %s |", c)
		}
		fmt.Fprint(w, "\n|---|")
		fmt.Fprint(w, strings.Repeat("---|", len(t.columns))+"\n")
		for _, row := range t.rows {
			fmt.Fprintf(w, "| %s |", row)
			for _, c := range t.columns {
				fmt.Fprintf(w, " %s |", cell(t.samples[row][c]))
			}
			fmt.Fprintln(w)
		}
	}
}

// window measures pid's CPU and the connections counted at the listeners
// over d.
func (b *bench) window(pid int, d time.Duration) (conns uint64, cpu float64, err error) {
	c0, err := b.readCounts()
	if err != nil {
		return 0, 0, err
	}
	t0, err := cpuSeconds(pid)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(d)
	c1, err := b.readCounts()
	if err != nil {
		return 0, 0, err
	}
	t1, err := cpuSeconds(pid)
	return c1.Total() - c0.Total(), t1 - t0, err
}

// settledCounts reads the counts until two reads 50 ms apart agree (at
// most 2 s): the listeners count a connection after the prober has left.
func (b *bench) settledCounts() (Counts, error) {
	c, err := b.readCounts()
	for range 40 {
		if err != nil {
			return c, err
		}
		time.Sleep(50 * time.Millisecond)
		var next Counts
		next, err = b.readCounts()
		if err == nil && next == c {
			return c, nil
		}
		c = next
	}
	return c, err
}

// rateRuns runs every prober at the rate on the N TCP listeners, then on the
// N TLS listeners: a bare connect and a handshake cost too differently to
// share a "CPU per check".
func (b *bench) rateRuns(rep *report, probers []prober) error {
	for _, kind := range []string{"TCP", "TLS"} {
		w := workload{tcp: b.ports.TCP}
		if kind == "TLS" {
			w = workload{tls: b.ports.TLS}
		}
		if err := b.ratePass(rep, probers, kind, w); err != nil {
			return err
		}
	}
	return nil
}

// ratePass runs every prober o.runs times on w's listeners at the rate.
func (b *bench) ratePass(rep *report, probers []prober, kind string, w workload) error {
	o := b.o
	iv := (time.Duration(float64(w.targets())/o.rate*float64(time.Second)) + time.Millisecond/2).Round(time.Millisecond)
	warm := min(max(iv+time.Second, 2*time.Second), 10*time.Second)
	t := rep.table(fmt.Sprintf("Daemons at %g checks/s over %d %s listeners", o.rate, w.targets(), kind),
		fmt.Sprintf("Interval %s; CPU per check = the prober's CPU time (/proc/PID/stat) over connections counted at the listeners; RSS at the end.", iv),
		"checks/s at the listeners", "CPU ms/check", "RSS MiB")
	w.interval, w.timeout, w.rate, w.concurrency = iv, timeoutFor(iv), o.rate, o.concurrency
	w.count = int(o.rate * (warm + o.duration + 10*time.Second).Seconds())
	w.maxTime = warm + o.duration + 60*time.Second
	for run := range o.runs {
		for _, p := range probers {
			r, err := b.launch(p, w, fmt.Sprintf("rate-%s-%d-%s", strings.ToLower(kind), run, slug(p.name)))
			if err != nil {
				return err
			}
			time.Sleep(warm)
			conns, cpu, err := b.window(r.main.cmd.Process.Pid, o.duration)
			rss, _ := rssMiB(r.main.cmd.Process.Pid)
			r.stop()
			if err != nil {
				return fmt.Errorf("%s on %s: %w", p.name, kind, err)
			}
			t.add(p.name, float64(conns)/o.duration.Seconds(), perCheckMs(cpu, conns), rss)
			fmt.Fprintf(os.Stderr, "rate %s run %d %s: %d conns, %.2fs CPU, %.0f MiB\n", kind, run+1, p.name, conns, cpu, rss)
		}
	}
	return nil
}

func perCheckMs(cpu float64, conns uint64) float64 {
	if conns == 0 {
		return 0
	}
	return cpu / float64(conns) * 1000
}

func slug(name string) string { return strings.Fields(strings.ToLower(name))[0] }

// cycle is count ports taken round-robin from ports.
func cycle(ports []int, count int) []int {
	out := make([]int, count)
	for i := range out {
		out[i] = ports[i%len(ports)]
	}
	return out
}

// oneshotRuns compares `flowprobe check` over the one-shot targets with the
// floor dialing the same count flat out.
func (b *bench) oneshotRuns(rep *report, floor prober) error {
	o := b.o
	t := rep.table(fmt.Sprintf("One-shot: %d TCP targets", o.oneshot),
		fmt.Sprintf("`flowprobe check` against the raw Go floor dialing as fast as it can; both at most %d connections at once.", o.concurrency),
		"checks/s", "wall s", "CPU ms/check")
	w := workload{tcp: cycle(b.ports.TCP, o.oneshot), interval: time.Hour, timeout: 5 * time.Second,
		count: o.oneshot, concurrency: o.concurrency, maxTime: 10 * time.Minute}
	for run := range o.runs {
		dir := filepath.Join(o.dir, fmt.Sprintf("oneshot-%d", run))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		floorArgv, _, _, err := floor.start(dir, w)
		if err != nil {
			return err
		}
		cfg, err := writeFile(dir, "flowprobe.yml", flowprobeConfig(w))
		if err != nil {
			return err
		}
		check := []string{o.flowprobe, "check", "--config.file=" + cfg, "--progress=never", "-o", "json", "--output.file=" + filepath.Join(dir, "check.json")}
		for _, c := range []struct {
			name string
			argv []string
		}{{floor.name, floorArgv}, {"flowprobe check", check}} {
			c0, err := b.readCounts()
			if err != nil {
				return err
			}
			start := time.Now()
			p, err := startProc(c.argv, filepath.Join(dir, slug(c.name)+".log"))
			if err != nil {
				return err
			}
			werr := p.cmd.Wait()
			wall := time.Since(start)
			p.log.Close()
			c1, err := b.settledCounts()
			if err != nil {
				return err
			}
			if werr != nil {
				fmt.Fprintf(os.Stderr, "one-shot %s: %v (see %s)\n", c.name, werr, dir)
			}
			st := p.cmd.ProcessState
			cpu := (st.UserTime() + st.SystemTime()).Seconds()
			conns := c1.Total() - c0.Total()
			t.add(c.name, float64(conns)/wall.Seconds(), wall.Seconds(), perCheckMs(cpu, conns))
			fmt.Fprintf(os.Stderr, "one-shot run %d %s: %d conns in %s, %.2fs CPU\n", run+1, c.name, conns, wall.Round(time.Millisecond), cpu)
		}
	}
	return nil
}

// scaleRuns starts each prober on each scale of TCP targets, lets one
// interval pass so every target has a result, then scrapes /metrics three
// times.
func (b *bench) scaleRuns(rep *report, probers []prober) error {
	o := b.o
	iv := o.scaleInterval
	for _, size := range o.scale {
		t := rep.table(fmt.Sprintf("Scale: %d TCP targets", size),
			fmt.Sprintf("Interval %s over %d listeners; RSS (VmRSS) after one interval and a fifth and after 3 scrapes of /metrics; checks/s and CPU per check over that time (connections counted at the listeners); CPU per scrape.", iv, o.n),
			"checks/s", "RSS before MiB", "RSS after MiB", "scrape s", "scrape MB", "series", "CPU ms/check", "CPU s/scrape")
		for run := range o.runs {
			for _, p := range probers {
				w := workload{tcp: cycle(b.ports.TCP, size), interval: iv, timeout: timeoutFor(iv),
					concurrency: o.concurrency, maxTime: time.Hour, memLimit: o.scaleMemLimit}
				r, err := b.launch(p, w, fmt.Sprintf("scale-%d-%d-%s", size, run, slug(p.name)))
				if err != nil {
					return err
				}
				err = b.scaleOne(t, p.name, r, iv)
				r.stop()
				if err != nil {
					return fmt.Errorf("%s at %d targets: %w", p.name, size, err)
				}
			}
		}
	}
	return nil
}

func (b *bench) scaleOne(t *table, name string, r *running, iv time.Duration) error {
	pid := r.main.cmd.Process.Pid
	wait := iv + iv/5 + 2*time.Second // Cloudprober exports after max(interval, 10s)
	conns, cpu, err := b.window(pid, wait)
	if err != nil {
		return err
	}
	before, err := rssMiB(pid)
	if err != nil {
		return err
	}
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	var secs, sizes, series []float64
	for range 3 {
		start := time.Now()
		resp, err := client.Get(r.metrics)
		if err != nil {
			return fmt.Errorf("scrape: %w", err)
		}
		n, lines, err := countBody(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("scrape: %w", err)
		}
		secs = append(secs, time.Since(start).Seconds())
		sizes = append(sizes, float64(n)/1e6)
		series = append(series, float64(lines))
	}
	after, err := rssMiB(pid)
	if err != nil {
		return err
	}
	cpu1, err := cpuSeconds(pid)
	if err != nil {
		return err
	}
	slices.Sort(secs)
	t.add(name, float64(conns)/wait.Seconds(), before, after, secs[1], sizes[2], series[2], perCheckMs(cpu, conns), (cpu1-cpu0)/3)
	fmt.Fprintf(os.Stderr, "scale %s: %d conns, RSS %.0f→%.0f MiB, scrape %.2fs %.1f MB\n", name, conns, before, after, secs[1], sizes[2])
	return nil
}

// countBody reads an exposition and returns its bytes and its sample lines.
func countBody(r io.Reader) (int64, int, error) {
	buf := make([]byte, 64<<10)
	var n int64
	lines, comment, start := 0, false, true
	for {
		k, err := r.Read(buf)
		for _, c := range buf[:k] {
			if start {
				comment = c == '#'
				start = false
			}
			if c == '\n' {
				if !comment {
					lines++
				}
				start = true
			}
		}
		n += int64(k)
		if err == io.EOF {
			return n, lines, nil
		}
		if err != nil {
			return n, lines, err
		}
	}
}
