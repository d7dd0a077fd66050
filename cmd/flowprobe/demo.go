package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/site"
)

// The demo site of `flowprobe serve --demo`: a made-up product whose
// servers are all on 127.0.0.1, played by flowprobe's own responder, a
// closed port and two peers that never answer. It is probed for real on a
// short interval, so metrics and the status page fill within seconds.
const (
	demoProductName = "demo-shop"
	demoInterval    = 4 * time.Second
	demoTimeout     = time.Second
)

// demoProduct is the demo's port table, as a vendor would publish it.
func demoProduct() *probe.Product {
	port := func(p int) []probe.PortSpec { return []probe.PortSpec{{Kind: probe.PortFixed, Low: p, High: p}} }
	flow := func(id, dst string, proto probe.Protocol, p int, purpose string) probe.Flow {
		return probe.Flow{Product: demoProductName, ID: id, Source: "monitor", Destination: dst, Protocol: proto, Ports: port(p), Purpose: purpose, Required: probe.Required, Configurable: true}
	}
	return &probe.Product{
		Name:  demoProductName,
		Title: "flowprobe demo site",
		Roles: []probe.Role{
			{Name: "monitor", Description: "this flowprobe instance"},
			{Name: "web", Description: "web front end (a flowprobe responder)"},
			{Name: "database", Description: "database server (nothing listens: refused)"},
			{Name: "backup", Description: "backup server (accepts and stays silent: service_timeout, no_response)"},
		},
		Flows: []probe.Flow{
			flow("web-https", "web", probe.TCP, 443, "storefront over HTTPS"),
			flow("web-api", "web", probe.TCP, 8080, "order API"),
			flow("web-syslog", "web", probe.UDP, 514, "syslog to the web tier"),
			flow("database", "database", probe.TCP, 5432, "orders database"),
			flow("backup-agent", "backup", probe.TCP, 9000, "backup agent control channel"),
			flow("backup-stream", "backup", probe.UDP, 9001, "backup status datagrams"),
		},
	}
}

// demoSite runs the demo's peers on 127.0.0.1.
type demoSite struct {
	responder *checks.Responder
	silentTCP net.Listener
	silentUDP net.PacketConn
	closedTCP int

	ports map[string]int // flow id -> port

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startDemo starts the responder and the silent peers and picks a closed
// port.
func startDemo() (_ *demoSite, err error) {
	d := &demoSite{conns: map[net.Conn]struct{}{}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	d.responder, err = checks.StartResponder(checks.ResponderConfig{
		Address: "127.0.0.1", TCPPorts: []int{0, 0}, UDPPorts: []int{0}, Name: "demo-web",
	})
	if err != nil {
		return nil, fmt.Errorf("start the demo responder: %w", err)
	}
	var tcp, udp []int
	for _, p := range d.responder.Listening() {
		if p.Protocol == probe.TCP {
			tcp = append(tcp, p.Port)
		} else {
			udp = append(udp, p.Port)
		}
	}
	if len(tcp) != 2 || len(udp) != 1 {
		return nil, fmt.Errorf("start the demo responder: listening on %v", d.responder.Listening())
	}
	if d.silentTCP, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start the demo's silent tcp peer: %w", err)
	}
	if d.silentUDP, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start the demo's silent udp peer: %w", err)
	}
	// A port that was just free and is closed again: connecting is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("find a closed port for the demo: %w", err)
	}
	d.closedTCP = ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	silentTCP := d.silentTCP.Addr().(*net.TCPAddr).Port
	d.ports = map[string]int{
		"web-https": tcp[0], "web-api": tcp[1], "web-syslog": udp[0],
		"database": d.closedTCP, "backup-agent": silentTCP, "backup-stream": d.silentUDP.LocalAddr().(*net.UDPAddr).Port,
	}
	d.wg.Add(2)
	go d.acceptSilently()
	go d.discardDatagrams()
	return d, nil
}

// acceptSilently accepts connections and never writes; each connection is
// read (and discarded) until the client gives up.
func (d *demoSite) acceptSilently() {
	defer d.wg.Done()
	for {
		c, err := d.silentTCP.Accept()
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

func (d *demoSite) discardDatagrams() {
	defer d.wg.Done()
	buf := make([]byte, 2048)
	for {
		if _, _, err := d.silentUDP.ReadFrom(buf); err != nil {
			return
		}
	}
}

// Close stops every peer and waits for their goroutines.
func (d *demoSite) Close() {
	if d.responder != nil {
		d.responder.Close()
	}
	if d.silentTCP != nil {
		d.silentTCP.Close()
	}
	if d.silentUDP != nil {
		d.silentUDP.Close()
	}
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.conns = nil
	d.mu.Unlock()
	d.wg.Wait()
}

// config is the demo's site configuration: this instance is the monitor
// and every other role is 127.0.0.1 on the peers' ports.
func (d *demoSite) config() *site.Config {
	host := func(role string, flows ...string) *site.RoleConfig {
		rc := &site.RoleConfig{Name: role, Hosts: []site.HostConfig{{Host: "127.0.0.1"}}, Responder: true, Ports: map[string]int{}}
		for _, f := range flows {
			rc.Ports[f] = d.ports[f]
		}
		return rc
	}
	return &site.Config{
		File:     "demo",
		Site:     "demo",
		Defaults: site.Defaults{Settings: site.Settings{Interval: demoInterval, Timeout: demoTimeout}},
		Products: []*site.ProductConfig{{
			Name: demoProductName,
			Self: []string{"monitor"},
			Roles: []*site.RoleConfig{
				host("web", "web-https", "web-api", "web-syslog"),
				host("database", "database"),
				host("backup", "backup-agent", "backup-stream"),
			},
		}},
	}
}

// plan validates the demo config and plans its targets.
func (d *demoSite) plan() (*site.Config, *site.PlanResult, error) {
	cfg := d.config()
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("demo config: %w", err)
	}
	res, err := site.PlanProducts([]*probe.Product{demoProduct()}, cfg, checks.Binder{})
	if err != nil {
		return nil, nil, fmt.Errorf("plan the demo: %w", err)
	}
	return cfg, res, nil
}
