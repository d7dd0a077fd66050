package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// The demo site of `flowprobe serve --demo`: the catalog's SIOS LifeKeeper
// product with two cluster nodes and a GUI client on loopback addresses.
// flowprobe's own responders stand in for LifeKeeper on node-a; node-b is
// half installed (one port closed, one service that accepts and stays
// silent); the demo adds two flows of its own to show a silent UDP peer and
// a port that is open but must be blocked. Every outcome is the true
// outcome of a real check over loopback, run every few seconds.
//
// The vendor's ports (81, 82, 778, 7365...) are privileged or may be taken
// on this machine, so every port is moved to a free one picked at start;
// the status page names the catalog port beside the one probed.
const (
	demoProductName = "sios-lifekeeper"
	demoInterval    = 4 * time.Second
	demoTimeout     = time.Second
)

// demoHost is one host of the demo site.
type demoHost struct {
	name, role, addr string
	// silent are the flows whose peer accepts and never answers; closed
	// the flows whose port is closed. Every other flow gets a responder.
	silent, closed []string
}

// demoHosts are the demo's machines. Linux routes all of 127.0.0.0/8 to
// the loopback interface, so each host gets its own address without root.
var demoHosts = []demoHost{
	{name: "node-a", role: "node", addr: "127.0.0.2"},
	{name: "node-b", role: "node", addr: "127.0.0.3", silent: []string{"lkpolicy"}, closed: []string{"data-replication"}},
	{name: "gui", role: "gui-client", addr: "127.0.0.4", silent: []string{"demo-syslog"}},
}

// demoSelf are the roles this instance plays: it checks the flows of both
// cluster nodes and of the GUI client.
var demoSelf = []string{"node", "gui-client"}

// demoExtraFlows are the demo's own flows, beside the vendor's. They are
// the site's flows, not LifeKeeper's, and are named so.
func demoExtraFlows() []*site.ExtraFlow {
	flow := func(id string, proto probe.Protocol, port int, purpose string) probe.Flow {
		return probe.Flow{Product: demoProductName, ID: id, Source: "node", Destination: "gui-client", Protocol: proto,
			Ports: []probe.PortSpec{{Kind: probe.PortFixed, Low: port, High: port}}, Purpose: purpose, Required: probe.Required, Configurable: true}
	}
	return []*site.ExtraFlow{
		{Flow: flow("demo-syslog", probe.UDP, 514, "Demo: syslog datagrams to the GUI client (a peer that reads and never answers)"),
			Config: site.FlowConfig{ID: "demo-syslog"}},
		{Flow: flow("demo-telnet-deny", probe.TCP, 23, "Demo: telnet to the GUI client, which the site's policy says must be blocked (it is open)"),
			Config: site.FlowConfig{ID: "demo-telnet-deny", Expect: probe.ExpectDeny}},
	}
}

// demoProduct is the catalog's LifeKeeper product as the demo plans it:
// the same flows, with every port marked movable, since the demo's
// responders cannot bind privileged ports without root. The catalog
// itself is not changed.
func demoProduct(cat *catalog.Catalog) (*probe.Product, error) {
	p, ok := cat.Product(demoProductName)
	if !ok {
		return nil, fmt.Errorf("demo: the catalog has no product %s", demoProductName)
	}
	c := *p
	c.Flows = slices.Clone(p.Flows)
	for i := range c.Flows {
		c.Flows[i].Configurable = true
	}
	return &c, nil
}

// demoSite runs the demo's peers.
type demoSite struct {
	product    *probe.Product
	responders []*checks.Responder
	listeners  []net.Listener
	packets    []net.PacketConn

	ports map[string]map[string]int // host address -> flow id -> port

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startDemo starts a responder, a silent peer and a closed port for each
// demo host, on free ports of the host's address.
func startDemo() (_ *demoSite, err error) {
	cat, err := catalog.Load()
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	d := &demoSite{conns: map[net.Conn]struct{}{}, ports: map[string]map[string]int{}}
	if d.product, err = demoProduct(cat); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	for _, h := range demoHosts {
		if err := d.startHost(h); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// demoFlows are the flows of the product and the demo's own that this
// instance checks at a host of the role, with a port.
func (d *demoSite) demoFlows(role string) []probe.Flow {
	var out []probe.Flow
	all := slices.Clone(d.product.Flows)
	for _, ef := range demoExtraFlows() {
		all = append(all, ef.Flow)
	}
	for _, f := range all {
		if f.Destination != role || !slices.Contains(demoSelf, f.Source) || f.Protocol == probe.ICMP || len(f.Ports) == 0 {
			continue
		}
		if k := f.Ports[0].Kind; k == probe.PortEphemeral || k == probe.PortDynamic {
			continue // not planned: no port to move
		}
		out = append(out, f)
	}
	return out
}

func (d *demoSite) startHost(h demoHost) error {
	ports := map[string]int{}
	d.ports[h.addr] = ports
	var answer []probe.Flow
	for _, f := range d.demoFlows(h.role) {
		switch {
		case slices.Contains(h.closed, f.ID):
			p, err := closedPort(h.addr)
			if err != nil {
				return err
			}
			ports[f.ID] = p
		case slices.Contains(h.silent, f.ID):
			p, err := d.silentPeer(h.addr, f.Protocol)
			if err != nil {
				return err
			}
			ports[f.ID] = p
		default:
			answer = append(answer, f)
		}
	}
	var tcp, udp []int
	for _, f := range answer {
		if f.Protocol == probe.UDP {
			udp = append(udp, 0)
		} else {
			tcp = append(tcp, 0)
		}
	}
	if len(answer) == 0 {
		return nil
	}
	r, err := checks.StartResponder(checks.ResponderConfig{Address: h.addr, TCPPorts: tcp, UDPPorts: udp, Name: "demo-" + h.name})
	if err != nil {
		return fmt.Errorf("start the demo responder of %s on %s: %w", h.name, h.addr, err)
	}
	d.responders = append(d.responders, r)
	got := r.Listening()
	if len(got) != len(answer) {
		return fmt.Errorf("start the demo responder of %s on %s: listening on %v only", h.name, h.addr, got)
	}
	// The responder lists its tcp ports first, then its udp ports, each
	// in the order asked for.
	var it, iu int
	for _, f := range answer {
		var p checks.ResponderPort
		if f.Protocol == probe.UDP {
			p = got[len(tcp)+iu]
			iu++
		} else {
			p = got[it]
			it++
		}
		ports[f.ID] = p.Port
	}
	return nil
}

// closedPort returns a port of addr that was just free and is closed
// again: connecting to it is refused.
func closedPort(addr string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a closed port for the demo on %s: %w", addr, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// silentPeer listens on a free port of addr and never answers: tcp
// connections are accepted and read, datagrams are read and dropped.
func (d *demoSite) silentPeer(addr string, proto probe.Protocol) (int, error) {
	if proto == probe.UDP {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
		if err != nil {
			return 0, fmt.Errorf("start the demo's silent udp peer on %s: %w", addr, err)
		}
		d.packets = append(d.packets, pc)
		d.wg.Add(1)
		go d.discardDatagrams(pc)
		return pc.LocalAddr().(*net.UDPAddr).Port, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("start the demo's silent tcp peer on %s: %w", addr, err)
	}
	d.listeners = append(d.listeners, ln)
	d.wg.Add(1)
	go d.acceptSilently(ln)
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// acceptSilently accepts connections and never writes; each connection is
// read (and discarded) until the client gives up.
func (d *demoSite) acceptSilently(ln net.Listener) {
	defer d.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed, or out of descriptors: the demo peer stops
		}
		d.mu.Lock()
		if d.conns == nil {
			d.mu.Unlock()
			c.Close()
			return
		}
		d.conns[c] = struct{}{}
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
			c.Close()
			d.mu.Lock()
			delete(d.conns, c)
			d.mu.Unlock()
		}()
	}
}

func (d *demoSite) discardDatagrams(pc net.PacketConn) {
	defer d.wg.Done()
	buf := make([]byte, 2048)
	for {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return
		}
	}
}

// Close stops every peer and waits for their goroutines.
func (d *demoSite) Close() {
	for _, r := range d.responders {
		r.Close()
	}
	for _, l := range d.listeners {
		l.Close()
	}
	for _, p := range d.packets {
		p.Close()
	}
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.conns = nil
	d.mu.Unlock()
	d.wg.Wait()
}

// config is the demo's site configuration: the hosts of each role with
// the ports the demo's peers got.
func (d *demoSite) config() *site.Config {
	roles := map[string]*site.RoleConfig{}
	var order []*site.RoleConfig
	for _, h := range demoHosts {
		rc := roles[h.role]
		if rc == nil {
			rc = &site.RoleConfig{Name: h.role, Responder: true}
			roles[h.role] = rc
			order = append(order, rc)
		}
		rc.Hosts = append(rc.Hosts, site.HostConfig{Host: h.addr, Ports: d.ports[h.addr]})
	}
	return &site.Config{
		File:     "demo",
		Site:     "demo",
		Defaults: site.Defaults{Settings: site.Settings{Interval: demoInterval, Timeout: demoTimeout}},
		Products: []*site.ProductConfig{{
			Name:       demoProductName,
			Self:       demoSelf,
			Roles:      order,
			ExtraFlows: demoExtraFlows(),
		}},
	}
}

// products are the demo's products for the status page: the catalog's
// LifeKeeper flows (with the vendor's ports) and the demo's own flows.
func (d *demoSite) products() []*probe.Product {
	p := *d.product
	p.Flows = slices.Clone(p.Flows)
	for _, ef := range demoExtraFlows() {
		p.Flows = append(p.Flows, ef.Flow)
	}
	return []*probe.Product{&p}
}

// plan validates the demo config and plans its targets.
func (d *demoSite) plan() (*site.Config, *site.PlanResult, error) {
	cfg := d.config()
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("demo config: %w", err)
	}
	res, err := site.PlanProducts([]*probe.Product{d.product}, cfg, checks.Binder{})
	if err != nil {
		return nil, nil, fmt.Errorf("plan the demo: %w", err)
	}
	return cfg, res, nil
}
