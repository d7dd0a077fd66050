package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// Counts is what the listeners have seen since they started.
type Counts struct {
	TCP uint64 `json:"tcp"` // connections accepted on the TCP listeners
	TLS uint64 `json:"tls"` // handshakes completed on the TLS listeners
}

// Total is every connection a prober made that reached a listener.
func (c Counts) Total() uint64 { return c.TCP + c.TLS }

// Ports is what `bench listen` writes to its ports file.
type Ports struct {
	Control string `json:"control"` // host:port of the counts endpoint
	TCP     []int  `json:"tcp"`
	TLS     []int  `json:"tls"`
}

// listenMain opens n TCP and n TLS listeners and serves their counts on
// GET /counts of a control listener until SIGTERM or -max-time.
func listenMain(args []string) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	n := fs.Int("n", 100, "listeners of each kind")
	portsFile := fs.String("ports-file", "", "write the ports here as JSON")
	maxTime := fs.Duration("max-time", time.Hour, "stop after this long at the latest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	var counts struct{ tcp, tls atomic.Uint64 }
	var ports Ports
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	open := func() (net.Listener, int, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, 0, fmt.Errorf("listen on 127.0.0.1: %w", err)
		}
		lns = append(lns, ln)
		return ln, ln.Addr().(*net.TCPAddr).Port, nil
	}
	for range *n {
		ln, port, err := open()
		if err != nil {
			return err
		}
		ports.TCP = append(ports.TCP, port)
		go acceptLoop(ln, func(c net.Conn) {
			counts.tcp.Add(1)
			c.Close()
		})
	}
	for range *n {
		ln, port, err := open()
		if err != nil {
			return err
		}
		ports.TLS = append(ports.TLS, port)
		go acceptLoop(ln, func(c net.Conn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			tc := tls.Server(c, tlsConf)
			if tc.Handshake() == nil {
				counts.tls.Add(1)
			}
		})
	}
	ctl, _, err := open()
	if err != nil {
		return err
	}
	ports.Control = ctl.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(Counts{TCP: counts.tcp.Load(), TLS: counts.tls.Load()})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ctl)
	data, err := json.Marshal(ports)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*portsFile+".tmp", data, 0o644); err != nil {
		return fmt.Errorf("write ports: %w", err)
	}
	if err := os.Rename(*portsFile+".tmp", *portsFile); err != nil {
		return fmt.Errorf("write ports: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()
	<-ctx.Done()
	return srv.Close()
}

// acceptLoop serves ln until it is closed; each connection gets its own
// goroutine so a slow TLS handshake never holds up the accepts.
func acceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors, say: let the probers back off
			continue
		}
		go serve(c)
	}
}

// selfSigned is a fresh P-256 certificate for 127.0.0.1: the probers skip
// verification, the handshake itself is what is counted.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bench"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
