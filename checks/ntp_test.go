package checks

import (
	"encoding/binary"
	"math"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// ntpReply describes the server-mode packet an in-process NTP responder
// sends back.
type ntpReply struct {
	leap, stratum  byte
	refID          string        // four ASCII letters, or "" for 0
	refAddr        [4]byte       // refid as an address when refID is ""
	clockSkew      time.Duration // server clock minus real time
	refAge         time.Duration // how long ago the server last set its clock
	rootDelay      time.Duration
	rootDispersion time.Duration
	badOrigin      bool // do not echo the client's transmit timestamp
}

func ntpTimestamp(t time.Time) uint64 {
	const ntpToUnix = 2208988800
	d := t.Sub(time.Unix(0, 0))
	sec := uint64(d/time.Second) + ntpToUnix
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

func ntpShort(d time.Duration) uint32 {
	return uint32(math.Round(d.Seconds() * 65536))
}

func (p ntpReply) build(req []byte) []byte {
	b := make([]byte, 48)
	b[0] = p.leap<<6 | 4<<3 | 4 // version 4, mode 4 (server)
	b[1] = p.stratum
	b[2] = 6
	b[3] = 0xe9 // precision 2^-23
	binary.BigEndian.PutUint32(b[4:], ntpShort(p.rootDelay))
	binary.BigEndian.PutUint32(b[8:], ntpShort(p.rootDispersion))
	if p.refID != "" {
		copy(b[12:16], p.refID)
	} else {
		copy(b[12:16], p.refAddr[:])
	}
	now := time.Now().Add(p.clockSkew)
	if p.stratum != 0 {
		binary.BigEndian.PutUint64(b[16:], ntpTimestamp(now.Add(-p.refAge)))
	}
	if !p.badOrigin && len(req) >= 48 {
		copy(b[24:32], req[40:48])
	}
	binary.BigEndian.PutUint64(b[32:], ntpTimestamp(now))
	binary.BigEndian.PutUint64(b[40:], ntpTimestamp(now))
	return b
}

var goodNTP = ntpReply{stratum: 2, refAddr: [4]byte{192, 0, 2, 1}, refAge: 30 * time.Second,
	rootDelay: 20 * time.Millisecond, rootDispersion: 10 * time.Millisecond}

func ntpTarget(t *testing.T, port int, raw map[string]any) probe.Target {
	t.Helper()
	opts, err := Decode("ntp", raw)
	if err != nil {
		t.Fatalf("Decode(%v): %v", raw, err)
	}
	return probe.Target{Host: "127.0.0.1", Port: port, Check: "ntp", Options: opts, Timeout: 2 * time.Second}
}

func TestNTPVerdicts(t *testing.T) {
	skewed := goodNTP
	skewed.clockSkew = 10 * time.Second
	far := goodNTP
	far.rootDispersion = 2 * time.Second
	tests := []struct {
		name    string
		reply   ntpReply
		raw     map[string]any
		outcome probe.Outcome
		status  string
		reason  string // a regular expression: measured values vary
		kiss    string
		stratum float64
		leap    float64
		offset  bool // offset, round trip and root distance reported
	}{
		{"synchronised", goodNTP, nil, probe.OutcomeOK, "synchronised", "", "", 2, 0, true},
		{"synchronised v3", goodNTP, map[string]any{"version": 3}, probe.OutcomeOK, "synchronised", "", "", 2, 0, true},
		{"chrony without sources", ntpReply{leap: 3}, nil, probe.OutcomeProtocolError, "unsynchronised", "server unsynchronised", "", 0, 3, false},
		{"ntpd starting", ntpReply{leap: 3, refID: "INIT"}, nil, probe.OutcomeProtocolError, "unsynchronised", "server unsynchronised", "INIT", 0, 3, false},
		{"stratum 16", ntpReply{leap: 3, stratum: 16, refAddr: [4]byte{127, 0, 0, 1}}, nil, probe.OutcomeProtocolError, "unsynchronised", "server unsynchronised", "", 16, 3, false},
		{"leap not in sync", ntpReply{leap: 3, stratum: 8, refAddr: [4]byte{127, 127, 1, 1}, refAge: time.Second}, nil, probe.OutcomeProtocolError, "unsynchronised", "server unsynchronised", "", 8, 3, false},
		{"rate limited", ntpReply{leap: 3, refID: "RATE"}, nil, probe.OutcomeProtocolError, "kiss_of_death", "kiss-of-death RATE", "RATE", 0, 3, false},
		{"denied", ntpReply{refID: "DENY"}, nil, probe.OutcomeProtocolError, "kiss_of_death", "kiss-of-death DENY", "DENY", 0, 0, false},
		{"offset unchecked by default", skewed, nil, probe.OutcomeOK, "synchronised", "", "", 2, 0, true},
		{"offset too large", skewed, map[string]any{"max_offset": "1s"}, probe.OutcomeProtocolError, "offset_too_large", `offset (9\.9\d*|10(\.0\d*)?)s exceeds max_offset 1s`, "", 2, 0, true},
		{"offset within limit", skewed, map[string]any{"max_offset": "1m"}, probe.OutcomeOK, "synchronised", "", "", 2, 0, true},
		{"root distance too large", far, map[string]any{"max_root_distance": "1s"}, probe.OutcomeProtocolError, "root_distance_too_large", `root distance 2\.01\d*s exceeds max_root_distance 1s`, "", 2, 0, true},
		{"reference time in the future", ntpReply{stratum: 3, refAddr: [4]byte{192, 0, 2, 1}, refAge: -time.Hour}, nil, probe.OutcomeProtocolError, "invalid", "invalid reply: invalid time reported", "", 3, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := rawUDPPeer(t, tc.reply.build)
			r := Check(t.Context(), ntpTarget(t, port, tc.raw))
			if r.Outcome != tc.outcome {
				t.Fatalf("outcome = %v (%v), want %v", r.Outcome, r.Err, tc.outcome)
			}
			if got := r.Details["ntp_status"]; got != tc.status {
				t.Errorf("ntp_status = %q, want %q", got, tc.status)
			}
			if reason := r.Details[probe.DetailReason]; !regexp.MustCompile(`^` + tc.reason + `$`).MatchString(reason) {
				t.Errorf("reason = %q, want to match %q", reason, tc.reason)
			}
			if got := r.Details["kiss_code"]; got != tc.kiss {
				t.Errorf("kiss_code = %q, want %q", got, tc.kiss)
			}
			if got, ok := r.Values[ValueNTPStratum]; !ok || got != tc.stratum {
				t.Errorf("stratum = %v (set %v), want %v", got, ok, tc.stratum)
			}
			if got, ok := r.Values[ValueNTPLeap]; !ok || got != tc.leap {
				t.Errorf("leap = %v (set %v), want %v", got, ok, tc.leap)
			}
			for _, v := range []string{ValueNTPOffset, ValueNTPRTT, ValueNTPRootDistance} {
				if _, ok := r.Values[v]; ok != tc.offset {
					t.Errorf("value %s reported = %v, want %v", v, ok, tc.offset)
				}
			}
			if tc.offset {
				want := tc.reply.clockSkew.Seconds()
				if off := r.Values[ValueNTPOffset]; math.Abs(off-want) > 0.5 {
					t.Errorf("offset = %v, want about %v", off, want)
				}
				wantRD := (tc.reply.rootDelay/2 + tc.reply.rootDispersion).Seconds()
				if rd := r.Values[ValueNTPRootDistance]; math.Abs(rd-wantRD) > 0.01 {
					t.Errorf("root distance = %v, want about %v", rd, wantRD)
				}
				if r.Details["reference_id"] != "192.0.2.1" {
					t.Errorf("reference_id = %q, want 192.0.2.1", r.Details["reference_id"])
				}
			}
		})
	}
}

func TestNTPHostilePeers(t *testing.T) {
	mismatch := goodNTP
	mismatch.badOrigin = true
	tests := []struct {
		name    string
		reply   func([]byte) []byte
		outcome probe.Outcome
		errText string
	}{
		{"origin mismatch", mismatch.build, probe.OutcomeProtocolError, "didn't match request"},
		{"garbage", func([]byte) []byte { return []byte("hello") }, probe.OutcomeProtocolError, "ntp query"},
		{"echo of the query", func(q []byte) []byte { return q }, probe.OutcomeProtocolError, "invalid mode"},
		{"silence", func([]byte) []byte { return nil }, probe.OutcomeTimeout, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := rawUDPPeer(t, tc.reply)
			tg := ntpTarget(t, port, nil)
			tg.Timeout = 300 * time.Millisecond
			r := Check(t.Context(), tg)
			if r.Outcome != tc.outcome {
				t.Fatalf("outcome = %v (%v), want %v", r.Outcome, r.Err, tc.outcome)
			}
			if !strings.Contains(r.Error(), tc.errText) {
				t.Errorf("error %q does not contain %q", r.Error(), tc.errText)
			}
			if len(r.Values) != 0 {
				t.Errorf("values %v from a failed query", r.Values)
			}
		})
	}
}

func TestNTPClosedPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	r := Check(t.Context(), ntpTarget(t, port, nil))
	if r.Outcome != probe.OutcomeRefused {
		t.Errorf("outcome = %v (%v), want refused", r.Outcome, r.Err)
	}
}

func TestNTPSourceAddressAndIPv6(t *testing.T) {
	pc, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	from := make(chan net.Addr, 1)
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case from <- addr:
			default:
			}
			_, _ = pc.WriteTo(goodNTP.build(buf[:n]), addr)
		}
	}()
	tg := ntpTarget(t, pc.LocalAddr().(*net.UDPAddr).Port, nil)
	tg.Host = "::1"
	tg.SourceAddress = "::1"
	r := Check(t.Context(), tg)
	if r.Outcome != probe.OutcomeOK {
		t.Fatalf("outcome = %v (%v), want ok", r.Outcome, r.Err)
	}
	if a := (<-from).(*net.UDPAddr); !a.IP.Equal(net.IPv6loopback) {
		t.Errorf("query came from %v, want ::1", a)
	}
}

func TestNTPOptions(t *testing.T) {
	bad := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"version": 5}, "version 5: want 3 or 4"},
		{map[string]any{"max_offset": "-1s"}, "max_offset -1s is negative"},
		{map[string]any{"max_root_distance": "-1s"}, "max_root_distance -1s is negative"},
		{map[string]any{"max_offset": "soon"}, `ntp options: "soon" is not a duration such as 5s`},
		{map[string]any{"server": "ntp.example.org"}, `unknown option "server"`},
	}
	for _, tc := range bad {
		_, err := Decode("ntp", tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%v) = %v, want error containing %q", tc.raw, err, tc.want)
		}
	}
	o, err := Decode("ntp", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := o.(*NTPOptions); n.Version != 4 || n.MaxOffset != 0 || n.MaxRootDistance != 0 {
		t.Errorf("defaults = %+v", n)
	}
}
