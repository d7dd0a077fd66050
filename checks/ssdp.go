package checks

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

var ssdpKind = register(Spec[SSDPOptions]{
	Name:        "ssdp",
	DefaultPort: 1900,
	Transport:   probe.UDP,
	Summary:     "SSDP unicast M-SEARCH: an HTTP/1.1 200 with ST and USN",
	Defaults:    newSSDPOptions,
	Hints:       []Hint{{App: "ssdp"}},
	Run:         runSSDP,
})

// SSDPOptions are the options of the ssdp check.
type SSDPOptions struct {
	// SearchTarget is the ST of the M-SEARCH (ssdp:all).
	SearchTarget string `yaml:"search_target"`
}

func newSSDPOptions() *SSDPOptions { return &SSDPOptions{SearchTarget: "ssdp:all"} }

// Validate checks the options.
func (o *SSDPOptions) Validate() error {
	if o.SearchTarget == "" || strings.ContainsAny(o.SearchTarget, "\r\n") || len(o.SearchTarget) > 255 {
		return fmt.Errorf("search_target %q: want one non-empty line of at most 255 bytes", o.SearchTarget)
	}
	return nil
}

// ssdpRequest is a unicast M-SEARCH (UPnP Device Architecture 2.0 §1.3.2:
// no MX, HOST is the device's address).
func ssdpRequest(host string, o *SSDPOptions) []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\nHOST: " + host + "\r\nMAN: \"ssdp:discover\"\r\nST: " +
		o.SearchTarget + "\r\nUSER-AGENT: flowprobe UPnP/2.0 flowprobe/1\r\n\r\n")
}

// ssdpReply is what a valid search response says.
type ssdpReply struct {
	st, usn, location, server string
}

// parseSSDPReply decodes a search response: HTTP/1.1 200 with ST and USN.
func parseSSDPReply(b []byte) (ssdpReply, error) {
	var rep ssdpReply
	if !bytes.HasPrefix(b, []byte("HTTP/1.")) {
		return rep, fmt.Errorf("not an SSDP search response: %s", quoteBytes(b, 32))
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return rep, fmt.Errorf("not an HTTP response: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("status %s, expected 200", strconv.Itoa(resp.StatusCode))
	}
	rep.st, rep.usn = resp.Header.Get("ST"), resp.Header.Get("USN")
	rep.location, rep.server = resp.Header.Get("LOCATION"), resp.Header.Get("SERVER")
	switch {
	case rep.st == "":
		return rep, errors.New("search response without ST")
	case rep.usn == "":
		return rep, errors.New("search response without USN")
	}
	return rep, nil
}

// runSSDP sends one unicast M-SEARCH and judges the reply.
func runSSDP(ctx context.Context, t probe.Target, o *SSDPOptions, r *probe.Result) error {
	port := cmp.Or(t.Port, 1900)
	req := ssdpRequest(net.JoinHostPort(t.Host, strconv.Itoa(port)), o)
	reply, err := exchange(ctx, &t, "udp", port, req, streamFraming{}, r)
	if err != nil {
		return err
	}
	rep, err := parseSSDPReply(reply)
	if err != nil {
		return replyError(r, "ssdp", err)
	}
	r.SetDetail("st", firstLine([]byte(rep.st)))
	r.SetDetail("usn", firstLine([]byte(rep.usn)))
	if rep.location != "" {
		r.SetDetail("location", firstLine([]byte(rep.location)))
	}
	if rep.server != "" {
		r.SetDetail("server", firstLine([]byte(rep.server)))
	}
	return nil
}
