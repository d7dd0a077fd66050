package checks

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// sendTargetsTarget logs in and answers SendTargets=All with text split
// over two Text Responses (TTT continuation), then serves the logout.
func sendTargetsTarget(f *fakeTarget) {
	if !f.tgtLogin() {
		return
	}
	full := encodeISCSIText([]iscsiKV{
		{"TargetName", "iqn.2024-01.org.example:disk1"},
		{"TargetAddress", "192.0.2.10:3260,1"},
		{"TargetAddress", "[2001:db8::10]:3260,1"},
		{"TargetName", "iqn.2024-01.org.example:chap"},
		{"TargetAddress", "192.0.2.10:3260,1"},
	})
	split := 50
	for i, part := range [][]byte{full[:split], full[split:]} {
		p, err := readISCSIPDU(f.rd)
		if err != nil {
			f.t.Errorf("fake target: no text request: %v", err)
			return
		}
		req, err := parseISCSITextReq(p)
		if err != nil {
			f.t.Errorf("fake target: %v", err)
			return
		}
		kvs, _ := decodeISCSIText(req.Data)
		switch {
		case i == 0 && (req.TTT != iscsiReservedTag || !slices.Equal(keysOf(kvs), []string{"SendTargets=All"})):
			f.t.Errorf("first text request TTT 0x%x keys %v", req.TTT, kvs)
		case i == 1 && (req.TTT != 0x55 || len(kvs) != 0):
			f.t.Errorf("continuation text request TTT 0x%x keys %v, want TTT 0x55 and no keys", req.TTT, kvs)
		}
		resp := iscsiTextResp{ITT: req.ITT, TTT: 0x55, StatSN: f.statSN, Data: part}
		if i == 1 {
			resp.Final, resp.TTT = true, iscsiReservedTag
		}
		f.statSN++
		f.write(resp.pdu())
	}
	f.logout()
}

func TestISCSISendTargets(t *testing.T) {
	t.Run("listed", func(t *testing.T) {
		srv := startFakeISCSI(t, sendTargetsTarget)
		r := checkISCSIAt(t, srv.port, 5*time.Second, decodeISCSIOptions(t, map[string]any{
			"send_targets": true, "expect_target": "iqn.2024-01.org.example:chap",
		}))
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeOK, "")
		wantDetails(t, r, map[string]string{
			"target_count": "2",
			"targets":      "iqn.2024-01.org.example:disk1 (192.0.2.10:3260,1, [2001:db8::10]:3260,1) iqn.2024-01.org.example:chap (192.0.2.10:3260,1)",
			"logout":       "ok",
		})
	})
	t.Run("not advertised", func(t *testing.T) {
		srv := startFakeISCSI(t, sendTargetsTarget)
		r := checkISCSIAt(t, srv.port, 5*time.Second, decodeISCSIOptions(t, map[string]any{
			"send_targets": true, "expect_target": "iqn.2024-01.org.example:disk7",
		}))
		srv.wait(t)
		wantOutcome(t, r, probe.OutcomeProtocolError, "target not advertised: iqn.2024-01.org.example:disk7 is not among the 2 targets listed")
		wantDetails(t, r, map[string]string{"reason": "target not advertised", "target_count": "2", "logout": "ok"})
	})
}

func TestISCSITargetsDetailBounded(t *testing.T) {
	var ts []iscsiAdvertised
	for i := range 1000 {
		ts = append(ts, iscsiAdvertised{Name: fmt.Sprintf("iqn.2024-01.org.example:disk%d", i), Addresses: []string{"192.0.2.1:3260,1"}})
	}
	d := iscsiTargetsDetail(ts)
	if len(d) > iscsiDetailTargetsLen+32 || !strings.HasSuffix(d, " more") {
		t.Errorf("detail of 1000 targets is %d bytes: %q", len(d), iscsiTrunc(d, 80))
	}
	if !strings.HasPrefix(d, "iqn.2024-01.org.example:disk0 (192.0.2.1:3260,1) ") {
		t.Errorf("detail starts %q", iscsiTrunc(d, 80))
	}
}
