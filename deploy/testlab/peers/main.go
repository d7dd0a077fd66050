// Command peers runs the lab's two trivial peers: a UDP echo service and a
// TCP service that accepts connections and then never says a word. The lab
// starts it inside its network namespace; it is not part of flowprobe.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// maxSilent bounds the connections the silent peer holds open at once.
const maxSilent = 256

func main() {
	echoAddr := flag.String("udp-echo", ":7007", "UDP address to echo datagrams on")
	silentAddr := flag.String("silent-tcp", ":7008", "TCP address to accept and stay silent on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *echoAddr, *silentAddr); err != nil {
		log.Error("peers", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, echoAddr, silentAddr string) error {
	pc, err := net.ListenPacket("udp", echoAddr)
	if err != nil {
		return fmt.Errorf("listen udp echo: %w", err)
	}
	ln, err := net.Listen("tcp", silentAddr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("listen silent tcp: %w", err)
	}
	log.Info("peers up", "udp_echo", pc.LocalAddr().String(), "silent_tcp", ln.Addr().String())

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); echo(log, pc) }()
	go func() { defer wg.Done(); silent(log, ln) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	pc.Close()
	ln.Close()
	wg.Wait()
	return nil
}

// echo sends every datagram back to where it came from.
func echo(log *slog.Logger, pc net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("udp echo read", "err", err)
			}
			return
		}
		if _, err := pc.WriteTo(buf[:n], from); err != nil {
			log.Warn("udp echo write", "peer", from.String(), "err", err)
		}
	}
}

// silent accepts connections and reads (and discards) whatever the client
// sends until it hangs up, never writing a byte.
func silent(log *slog.Logger, ln net.Listener) {
	slots := make(chan struct{}, maxSilent)
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("silent tcp accept", "err", err)
			}
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			c.Close() // too many held connections: drop the newest
			continue
		}
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		go func() {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
			mu.Lock()
			delete(open, c)
			mu.Unlock()
			<-slots
		}()
	}
}
