package exporter

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// This file holds the parts of the status page beyond the flow table: the
// filters, the flow map (an SVG drawn on the server) and the history strip
// of each target. http.go builds the table and calls in here.

// FlowInfo is what the status page says about a flow beyond its targets,
// from the catalog: why it exists and the ports the vendor documents.
type FlowInfo struct {
	Purpose string
	// Ports are the vendor's ports, e.g. "7365/tcp"; a site may probe
	// another port (a port override).
	Ports string
}

// statusFilter narrows the status page: the query parameters failing=1,
// product=NAME and role=NAME (a flow's source or destination).
type statusFilter struct {
	Failing       bool
	Product, Role string
}

func parseFilter(q url.Values) statusFilter {
	f := statusFilter{Product: q.Get("product"), Role: q.Get("role")}
	switch q.Get("failing") {
	case "1", "true", "on", "yes":
		f.Failing = true
	}
	return f
}

// Active reports whether the filter hides anything.
func (f statusFilter) Active() bool { return f.Failing || f.Product != "" || f.Role != "" }

func (f statusFilter) keep(t *probe.Target, state string) bool {
	return (!f.Failing || state == "down") &&
		(f.Product == "" || t.Product == f.Product) &&
		(f.Role == "" || t.Source == f.Role || t.Destination == f.Role)
}

// The flow map's geometry, in viewBox units: source roles on the left,
// destination roles on the right, one labelled edge per flow between them.
const (
	mapWidth   = 520
	mapRowH    = 26
	mapNodeW   = 120
	mapNodeH   = 30
	mapLabelX0 = 184
	mapLabelX1 = mapWidth - mapLabelX0
	mapPad     = 8
)

type (
	flowMapView struct {
		Product        string
		Width, Height  int
		Sources, Dests []mapNode
		Edges          []mapEdge
	}
	mapNode struct {
		Role       string
		X, Y, W, H int
		TX, TY     int // text anchor
	}
	mapEdge struct {
		Flow, Source, Destination string
		State, Symbol             string
		Path                      string
		LX, LY                    int
		Anchor                    string // the id of the flow's first row
		Info                      FlowInfo
		Up, Total                 int
		Targets                   []mapTarget
	}
	mapTarget struct {
		Target, Outcome, Hint, Latency string
	}
)

// symbols mark a state in text, so that colour is never the only sign.
var symbols = map[string]string{"up": "✓", "down": "✗", "pending": "…"}

// stateWord is what a state symbol means, for text alternatives.
var stateWord = map[string]string{"up": "passing", "down": "failing", "pending": "not run yet"}

// buildMap draws one product's map from its rows.
func buildMap(pv *productView, info func(product, flow string) FlowInfo) flowMapView {
	m := flowMapView{Product: pv.Name, Width: mapWidth}
	idx := map[string]int{}
	for _, pair := range pv.Pairs {
		for _, r := range pair.Rows {
			key := pair.Source + "\x00" + pair.Destination + "\x00" + r.Flow
			i, ok := idx[key]
			if !ok {
				i = len(m.Edges)
				idx[key] = i
				e := mapEdge{Flow: r.Flow, Source: pair.Source, Destination: pair.Destination, State: "up", Anchor: r.Anchor}
				if info != nil {
					e.Info = info(pv.Name, r.Flow)
				}
				m.Edges = append(m.Edges, e)
			}
			e := &m.Edges[i]
			e.Total++
			switch {
			case r.State == "down":
				e.State = "down"
			case r.State == "pending" && e.State == "up":
				e.State = "pending"
			case r.State == "up":
				e.Up++
			}
			mt := mapTarget{Target: r.Target + "/" + r.Protocol, Outcome: r.Outcome, Hint: r.Hint}
			if mt.Outcome == "" {
				mt.Outcome = "not run yet"
			} else {
				mt.Latency = fmt.Sprintf("%.1f ms", float64(r.Latency.Microseconds())/1000)
			}
			e.Targets = append(e.Targets, mt)
		}
	}
	var srcs, dsts []string
	for _, e := range m.Edges {
		if !slices.Contains(srcs, e.Source) {
			srcs = append(srcs, e.Source)
		}
		if !slices.Contains(dsts, e.Destination) {
			dsts = append(dsts, e.Destination)
		}
	}
	rows := max(len(m.Edges), 2*len(srcs), 2*len(dsts), 1)
	m.Height = rows*mapRowH + 2*mapPad
	place := func(roles []string, x int) []mapNode {
		out := make([]mapNode, len(roles))
		for i, r := range roles {
			cy := mapPad + (rows*mapRowH)*(2*i+1)/(2*len(roles))
			out[i] = mapNode{Role: r, X: x, Y: cy - mapNodeH/2, W: mapNodeW, H: mapNodeH, TX: x + mapNodeW/2, TY: cy + 5}
		}
		return out
	}
	m.Sources = place(srcs, 4)
	m.Dests = place(dsts, mapWidth-4-mapNodeW)
	centre := func(nodes []mapNode, role string) int {
		for _, n := range nodes {
			if n.Role == role {
				return n.Y + mapNodeH/2
			}
		}
		return 0
	}
	for i := range m.Edges {
		e := &m.Edges[i]
		ys, yd := centre(m.Sources, e.Source), centre(m.Dests, e.Destination)
		yi := mapPad + i*mapRowH + mapRowH/2
		x0, x1 := 4+mapNodeW, mapWidth-4-mapNodeW
		e.Path = fmt.Sprintf("M%d %dC%d %d %d %d %d %dM%d %dC%d %d %d %d %d %d",
			x0, ys, (x0+mapLabelX0)/2, ys, (x0+mapLabelX0)/2, yi, mapLabelX0, yi,
			mapLabelX1, yi, (mapLabelX1+x1)/2, yi, (mapLabelX1+x1)/2, yd, x1, yd)
		e.LX, e.LY = mapWidth/2, yi+4
		e.Symbol = symbols[e.State]
	}
	return m
}

// anchor turns a target ID into an HTML id that needs no escaping in a
// URL fragment: "t-" and the ID with every other character than letters,
// digits, '.', '_' and '-' replaced by '-'.
func anchor(id string) string {
	return "t-" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, id)
}

// Label is the edge's text: its symbol and flow.
func (e mapEdge) Label() string { return e.Symbol + " " + e.Flow }

// Summary is the edge's text alternative: verdict, path, targets, and the
// catalog's purpose and ports.
func (e mapEdge) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s, %s → %s: %s (%d of %d targets pass)", e.Symbol, e.Flow, e.Source, e.Destination, stateWord[e.State], e.Up, e.Total)
	if e.Info.Ports != "" {
		fmt.Fprintf(&b, "; catalog port %s", e.Info.Ports)
	}
	if e.Info.Purpose != "" {
		fmt.Fprintf(&b, "; %s", e.Info.Purpose)
	}
	return b.String()
}

// historyView is a target's history strip: runs of equal verdicts drawn as
// one span each, a low bar per passing run and a full block per failing
// one, so the shape tells what the colour tells.
type historyView struct {
	Groups []historyGroup
	Label  string // the text alternative
}

type historyGroup struct {
	Pass bool
	Bars string
}

func newHistoryView(pts []HistoryPoint) historyView {
	var h historyView
	if len(pts) == 0 {
		return h
	}
	type run struct {
		word string
		n    int
	}
	var runs []run
	var pass int
	for _, p := range pts {
		if p.Success {
			pass++
		}
		if n := len(h.Groups); n == 0 || h.Groups[n-1].Pass != p.Success {
			h.Groups = append(h.Groups, historyGroup{Pass: p.Success})
		}
		g := &h.Groups[len(h.Groups)-1]
		if p.Success {
			g.Bars += "▁"
		} else {
			g.Bars += "█"
		}
		if w := outcomeWord(p); len(runs) > 0 && runs[len(runs)-1].word == w {
			runs[len(runs)-1].n++
		} else {
			runs = append(runs, run{w, 1})
		}
	}
	words := make([]string, len(runs))
	for i, r := range runs {
		words[i] = fmt.Sprintf("%s×%d", r.word, r.n)
	}
	h.Label = fmt.Sprintf("last %d runs: %d passed, %d failed; oldest first: %s", len(pts), pass, len(pts)-pass, strings.Join(words, ", "))
	return h
}

func outcomeWord(p HistoryPoint) string {
	if !p.Success && p.Outcome == probe.OutcomeOK {
		return "open (must be blocked)"
	}
	return p.Outcome.String()
}

// siteView is the page's header line about the configuration.
type siteView struct {
	Name     string
	ReloadOK bool
	Loaded   string // when the running configuration was loaded, "3m ago"
}

func (e *Exporter) siteView(now time.Time) siteView {
	v := siteView{}
	if d := e.descs.Load(); d != nil {
		v.Name = d.constLabels["site"]
	}
	e.reloadMu.Lock()
	v.ReloadOK = e.reloadOK
	at := e.reloadSuccess
	e.reloadMu.Unlock()
	if !at.IsZero() {
		v.Loaded = age(now.Sub(at))
	}
	return v
}
