package checks

// The login phase of the iscsi check (RFC 7143 §6, §12): stage
// negotiation, CHAP, the operational keys and the target's login status.

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

// login runs the login phase until the target moves to full feature phase,
// fails the login, or redirects it.
func (s *iscsiSession) login(r *probe.Result) (redirected bool, err error) {
	o := s.o
	sessionType := "Discovery"
	if o.Target != "" {
		sessionType = "Normal"
	}
	authMethod := "None"
	if s.chap != nil {
		authMethod = "CHAP,None"
	}
	keys := []iscsiKV{{"InitiatorName", o.InitiatorName}, {"SessionType", sessionType}}
	if o.Target != "" {
		keys = append(keys, iscsiKV{"TargetName", o.Target})
	}
	keys = append(keys, iscsiKV{"AuthMethod", authMethod})

	var (
		stage    uint8 = iscsiStageSecurity
		transit        = true
		chapDone bool
		text     []byte // response text carried over PDUs with C=1
		sent     []iscsiKV
	)
	itt := s.nextITT() // one ITT for the whole login (RFC 7143 §11.12.8)
	for n := 1; ; n++ {
		if n > iscsiMaxLoginPDUs {
			return false, Fail(probe.OutcomeProtocolError, "iscsi login: not complete after %d login requests", iscsiMaxLoginPDUs)
		}
		req := iscsiLoginReq{
			Transit: transit, CSG: stage, NSG: iscsiNextStage(stage),
			ISID: s.isid, ITT: itt, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN,
			Data: encodeISCSIText(keys),
		}
		if !transit {
			req.NSG = 0
		}
		sent = append(sent, keys...)
		if err := s.send("login", req.pdu()); err != nil {
			return false, err
		}
		p, err := s.receive("login", iscsiOpLoginResp, "Login Response")
		if err != nil {
			return false, err
		}
		resp, err := parseISCSILoginResp(p)
		if err != nil {
			s.broken = true
			return false, fmt.Errorf("iscsi login: %w", err)
		}
		if resp.ITT != itt {
			s.broken = true
			return false, Fail(probe.OutcomeProtocolError, "iscsi login: response for task tag 0x%08x, sent 0x%08x", resp.ITT, itt)
		}
		s.expStatSN = resp.StatSN + 1
		if len(text)+len(resp.Data) > iscsiMaxData {
			return false, Fail(probe.OutcomeProtocolError, "iscsi login: response text longer than %d bytes", iscsiMaxData)
		}
		text = append(text, resp.Data...)
		if resp.StatusClass != 0 {
			kvs, _ := decodeISCSIText(text)
			return s.loginStatus(r, resp, kvs)
		}
		if resp.Continue {
			if resp.Transit {
				return false, Fail(probe.OutcomeProtocolError, "iscsi login: response has both T and C set")
			}
			// The target's text goes on in the next response: ask for it.
			keys, transit = nil, false
			continue
		}
		kvs, err := decodeISCSIText(text)
		if err != nil {
			return false, fmt.Errorf("iscsi login: %w", err)
		}
		text = text[:0]
		s.noteLoginKeys(r, kvs)

		if resp.Transit {
			switch {
			case resp.NSG == iscsiStageFull:
				if resp.TSIH == 0 {
					return false, Fail(probe.OutcomeProtocolError, "iscsi login: final login response without a TSIH")
				}
				s.tsih = resp.TSIH
				r.SetDetail("tsih", strconv.Itoa(int(resp.TSIH)))
				r.SetDetail("status", iscsiStatusText(0))
				return false, nil
			case resp.NSG == iscsiStageOperational && stage == iscsiStageSecurity:
				stage, transit, sent = iscsiStageOperational, true, nil
				keys = []iscsiKV{
					{"HeaderDigest", "None"},
					{"DataDigest", "None"},
					{"MaxRecvDataSegmentLength", strconv.Itoa(iscsiMaxData)},
				}
				continue
			default:
				return false, Fail(probe.OutcomeProtocolError, "iscsi login: target moved from stage %d to stage %d", stage, resp.NSG)
			}
		}

		// T=0: the target stays in this stage and wants another request.
		if stage == iscsiStageOperational {
			keys, transit = iscsiAnswerKeys(kvs, sent), true
			continue
		}
		keys, transit, err = s.securityStep(kvs, &chapDone)
		if err != nil {
			return false, err
		}
	}
}

// iscsiNextStage is the stage a request asks to move to from stage.
func iscsiNextStage(stage uint8) uint8 {
	if stage == iscsiStageSecurity {
		return iscsiStageOperational
	}
	return iscsiStageFull
}

// securityStep answers a T=0 response of the security stage: the CHAP
// exchange of RFC 7143 §12.1.3, or a plain request to move on.
func (s *iscsiSession) securityStep(kvs []iscsiKV, chapDone *bool) (keys []iscsiKV, transit bool, err error) {
	if _, ok := iscsiTextValue(kvs, "CHAP_C"); ok {
		if s.chap == nil || *chapDone {
			return nil, false, Fail(probe.OutcomeProtocolError, "iscsi login: unexpected CHAP challenge")
		}
		keys, err := s.chapResponse(kvs)
		if err != nil {
			return nil, false, err
		}
		*chapDone = true
		return keys, true, nil
	}
	if am, ok := iscsiTextValue(kvs, "AuthMethod"); ok {
		switch am {
		case "CHAP":
			if s.chap == nil {
				return nil, false, Fail(probe.OutcomeProtocolError, "iscsi login: target chose AuthMethod=CHAP, which was not offered")
			}
			// Offer MD5, the one algorithm RFC 7143 requires.
			return []iscsiKV{{"CHAP_A", "5"}}, false, nil
		case "None":
		default:
			return nil, false, Fail(probe.OutcomeAuthError, "iscsi login: target answered AuthMethod=%s: it wants an authentication method that was not offered", iscsiTrunc(am, 40))
		}
	}
	return nil, true, nil
}

// chapResponse computes CHAP_N and CHAP_R for the target's CHAP_A, CHAP_I
// and CHAP_C: R = MD5(I || secret || C) (RFC 1994 §4.1).
func (s *iscsiSession) chapResponse(kvs []iscsiKV) ([]iscsiKV, error) {
	alg, _ := iscsiTextValue(kvs, "CHAP_A")
	switch alg {
	case "5":
	case "Reject", "NotUnderstood":
		return nil, Fail(probe.OutcomeAuthError, "iscsi login: target refuses CHAP with MD5 (CHAP_A=%s)", alg)
	default:
		return nil, Fail(probe.OutcomeProtocolError, "iscsi login: target chose CHAP_A=%q, only MD5 (5) was offered", iscsiTrunc(alg, 20))
	}
	idText, _ := iscsiTextValue(kvs, "CHAP_I")
	id, err := parseISCSINumber(idText)
	if err != nil || id > 255 {
		return nil, Fail(probe.OutcomeProtocolError, "iscsi login: bad CHAP_I %q", iscsiTrunc(idText, 20))
	}
	challengeText, _ := iscsiTextValue(kvs, "CHAP_C")
	challenge, err := decodeISCSIBinary(challengeText)
	if err != nil || len(challenge) == 0 {
		return nil, Fail(probe.OutcomeProtocolError, "iscsi login: bad CHAP_C %q", iscsiTrunc(challengeText, 20))
	}
	h := md5.New()
	h.Write([]byte{byte(id)})
	h.Write(s.chap)
	h.Write(challenge)
	return []iscsiKV{
		{"CHAP_N", s.o.CHAPUsername},
		{"CHAP_R", "0x" + hex.EncodeToString(h.Sum(nil))},
	}, nil
}

// parseISCSINumber parses a decimal or 0x hex constant (RFC 7143 §6.1).
func parseISCSINumber(s string) (uint64, error) {
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		return strconv.ParseUint(h, 16, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

// decodeISCSIBinary decodes a binary value: 0x hex or 0b base64 (RFC 7143
// §6.1).
func decodeISCSIBinary(s string) ([]byte, error) {
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		h := s[2:]
		if len(h)%2 == 1 {
			h = "0" + h
		}
		return hex.DecodeString(h)
	case len(s) > 2 && (s[:2] == "0b" || s[:2] == "0B"):
		return base64.StdEncoding.DecodeString(s[2:])
	}
	return nil, errors.New("not a binary value")
}

// iscsiAnswerKeys answers the operational keys a target proposed in a T=0
// response without being asked (RFC 7143 §6.2): digests get None, the
// known negotiated keys get the target's value back (always an acceptable
// answer to a single value), anything else NotUnderstood. Declarative keys
// and responses to what the check sent need no answer.
func iscsiAnswerKeys(kvs, sent []iscsiKV) []iscsiKV {
	var out []iscsiKV
	for _, kv := range kvs {
		if _, ok := iscsiTextValue(sent, kv.Key); ok {
			continue
		}
		switch kv.Value {
		case "NotUnderstood", "Irrelevant", "Reject":
			continue
		}
		switch kv.Key {
		case "MaxRecvDataSegmentLength", "TargetAlias", "TargetAddress", "TargetPortalGroupTag", "TargetName":
			continue
		case "HeaderDigest", "DataDigest":
			out = append(out, iscsiKV{kv.Key, "None"})
		case "MaxConnections", "InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength",
			"DefaultTime2Wait", "DefaultTime2Retain", "MaxOutstandingR2T", "DataPDUInOrder",
			"DataSequenceInOrder", "ErrorRecoveryLevel":
			v, _, _ := strings.Cut(kv.Value, ",")
			out = append(out, iscsiKV{kv.Key, v})
		default:
			out = append(out, iscsiKV{kv.Key, "NotUnderstood"})
		}
	}
	return out
}

// noteLoginKeys records what the target said about itself.
func (s *iscsiSession) noteLoginKeys(r *probe.Result, kvs []iscsiKV) {
	if v, ok := iscsiTextValue(kvs, "AuthMethod"); ok && (v == "None" || v == "CHAP") {
		r.SetDetail("auth_method", v)
	}
	if v, ok := iscsiTextValue(kvs, "TargetPortalGroupTag"); ok {
		r.SetDetail("target_portal_group", iscsiTrunc(v, 16))
	}
	if v, ok := iscsiTextValue(kvs, "TargetAlias"); ok {
		r.SetDetail("target_alias", iscsiTrunc(v, 64))
	}
}

func iscsiStatusText(status uint16) string {
	return fmt.Sprintf("0x%04x %s", status, iscsiStatusName(status))
}

// loginStatus turns a non-zero status class into the run's verdict.
func (s *iscsiSession) loginStatus(r *probe.Result, resp iscsiLoginResp, kvs []iscsiKV) (bool, error) {
	s.broken = true // the target ends the connection after a failed login
	status := resp.Status()
	name := iscsiStatusName(status)
	r.SetDetail("status", iscsiStatusText(status))
	if resp.StatusClass == 1 {
		addr, _ := iscsiTextValue(kvs, "TargetAddress")
		r.SetDetail("target_address", iscsiTrunc(addr, 128))
		r.SetDetail("redirect", name)
		return true, nil
	}
	err := iscsiStatusError(status)
	var oe *OutcomeError
	if errors.As(err, &oe) {
		reason := name
		if status == 0x0203 || status == 0x0204 {
			reason = "target not found"
		}
		r.SetDetail(probe.DetailReason, reason)
	}
	return false, err
}

// iscsiStatusError maps a failed login's status to an outcome:
//
//   - 0x0201 authentication and 0x0202 authorization failure: auth_error;
//   - 0x0203 not found and 0x0204 removed: auth_error, reason "target not
//     found". The portal answered as iSCSI, so the path and the protocol
//     are fine; what is wrong is the name the check asks for, or the
//     target's access list: tgt and LIO answer "not found" also to an
//     initiator their ACL does not admit, so the two cannot be told apart;
//   - any other class 2 (initiator error) or class 3 (target error):
//     protocol_error naming the status.
func iscsiStatusError(status uint16) error {
	name := iscsiStatusName(status)
	switch {
	case status == 0x0201 || status == 0x0202:
		return Fail(probe.OutcomeAuthError, "iscsi login refused: %s (status 0x%04x)", name, status)
	case status == 0x0203 || status == 0x0204:
		return Fail(probe.OutcomeAuthError, "iscsi login refused: target not found (status 0x%04x, %s)", status, name)
	case status>>8 == 2:
		return Fail(probe.OutcomeProtocolError, "iscsi login refused: %s (status 0x%04x)", name, status)
	case status>>8 == 3:
		return Fail(probe.OutcomeProtocolError, "iscsi login failed, target error: %s (status 0x%04x)", name, status)
	}
	return Fail(probe.OutcomeProtocolError, "iscsi login failed: unknown status 0x%04x", status)
}
