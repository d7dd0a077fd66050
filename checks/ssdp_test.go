package checks

import (
	"bytes"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// ssdpDevice answers an M-SEARCH as a UPnP root device does (UPnP Device
// Architecture 2.0 §1.3.3); anything else is ignored.
func ssdpDevice(req []byte) []byte {
	if !bytes.HasPrefix(req, []byte("M-SEARCH * HTTP/1.1\r\n")) || !bytes.Contains(req, []byte("MAN: \"ssdp:discover\"")) {
		return nil
	}
	return []byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n" +
		"LOCATION: http://192.0.2.7:80/desc.xml\r\nSERVER: Linux/6 UPnP/2.0 xcc/1\r\n" +
		"ST: upnp:rootdevice\r\nUSN: uuid:0a1b2c3d::upnp:rootdevice\r\n\r\n")
}

func TestSSDPCheck(t *testing.T) {
	device := loopbackUDPPeer(t, ssdpDevice)
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return []byte("\x01\x02 not http") })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	notFound := loopbackUDPPeer(t, func([]byte) []byte { return []byte("HTTP/1.1 404 Not Found\r\n\r\n") })
	noUSN := loopbackUDPPeer(t, func([]byte) []byte { return []byte("HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n") })
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return req })

	runExchangeCases(t, "ssdp", []exchangeCase{
		{name: "root device", port: device, want: probe.OutcomeOK,
			details: map[string]string{"st": "upnp:rootdevice", "usn": "uuid:0a1b2c3d::upnp:rootdevice", "location": "http://192.0.2.7:80/desc.xml"}},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "not an SSDP search response"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "not an SSDP search response"},
		{name: "not 200", port: notFound, want: probe.OutcomeProtocolError, reason: "status 404, expected 200"},
		{name: "no USN", port: noUSN, want: probe.OutcomeProtocolError, reason: "without USN"},
		{name: "echoed request", port: echo, want: probe.OutcomeProtocolError, reason: "not an SSDP search response"},
	})
	if _, err := Decode("ssdp", map[string]any{"search_target": "a\r\nb"}); err == nil {
		t.Error("a search target with a line break decoded")
	}
}

func FuzzParseSSDPReply(f *testing.F) {
	seedCorpus(f, "FuzzParseSSDPReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseSSDPReply(b)
		if err == nil && (rep.st == "" || rep.usn == "") {
			t.Errorf("accepted %q without ST and USN", b)
		}
	})
}
