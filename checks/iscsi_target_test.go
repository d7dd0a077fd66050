package checks

import "encoding/binary"

// The target side of the iSCSI PDUs: what the in-process test targets
// decode from the check and answer with. The check itself only sends
// requests and reads responses (iscsi_pdu.go).

func parseISCSILoginReq(p iscsiPDU) (iscsiLoginReq, error) {
	if err := iscsiWantOpcode(p, iscsiOpLoginReq, "Login Request"); err != nil {
		return iscsiLoginReq{}, err
	}
	h := p.bhs[:]
	m := iscsiLoginReq{
		Transit: h[1]&iscsiFlagFinal != 0, Continue: h[1]&iscsiFlagContinue != 0,
		CSG: h[1] >> 2 & 3, NSG: h[1] & 3,
		VersionMax: h[2], VersionMin: h[3],
		TSIH: binary.BigEndian.Uint16(h[14:]), ITT: binary.BigEndian.Uint32(h[16:]), CID: binary.BigEndian.Uint16(h[20:]),
		CmdSN: binary.BigEndian.Uint32(h[24:]), ExpStatSN: binary.BigEndian.Uint32(h[28:]),
		Data: p.data,
	}
	copy(m.ISID[:], h[8:14])
	return m, nil
}

func (m *iscsiLoginResp) pdu() iscsiPDU {
	var p iscsiPDU
	p.bhs[0] = iscsiOpLoginResp
	p.bhs[1] = iscsiStageFlags(m.Transit, m.Continue, m.CSG, m.NSG)
	p.bhs[2], p.bhs[3] = m.VersionMax, m.VersionActive
	copy(p.bhs[8:14], m.ISID[:])
	binary.BigEndian.PutUint16(p.bhs[14:], m.TSIH)
	binary.BigEndian.PutUint32(p.bhs[16:], m.ITT)
	binary.BigEndian.PutUint32(p.bhs[24:], m.StatSN)
	binary.BigEndian.PutUint32(p.bhs[28:], m.ExpCmdSN)
	binary.BigEndian.PutUint32(p.bhs[32:], m.MaxCmdSN)
	p.bhs[36], p.bhs[37] = m.StatusClass, m.StatusDetail
	p.data = m.Data
	return p
}

func parseISCSITextReq(p iscsiPDU) (iscsiTextReq, error) {
	if err := iscsiWantOpcode(p, iscsiOpTextReq, "Text Request"); err != nil {
		return iscsiTextReq{}, err
	}
	h := p.bhs[:]
	return iscsiTextReq{
		Final: h[1]&iscsiFlagFinal != 0, Continue: h[1]&iscsiFlagContinue != 0,
		LUN: binary.BigEndian.Uint64(h[8:]), ITT: binary.BigEndian.Uint32(h[16:]), TTT: binary.BigEndian.Uint32(h[20:]),
		CmdSN: binary.BigEndian.Uint32(h[24:]), ExpStatSN: binary.BigEndian.Uint32(h[28:]),
		Data: p.data,
	}, nil
}

func (m *iscsiTextResp) pdu() iscsiPDU {
	var p iscsiPDU
	p.bhs[0] = iscsiOpTextResp
	p.bhs[1] = iscsiFinalFlags(m.Final, m.Continue)
	binary.BigEndian.PutUint64(p.bhs[8:], m.LUN)
	binary.BigEndian.PutUint32(p.bhs[16:], m.ITT)
	binary.BigEndian.PutUint32(p.bhs[20:], m.TTT)
	binary.BigEndian.PutUint32(p.bhs[24:], m.StatSN)
	binary.BigEndian.PutUint32(p.bhs[28:], m.ExpCmdSN)
	binary.BigEndian.PutUint32(p.bhs[32:], m.MaxCmdSN)
	p.data = m.Data
	return p
}

func parseISCSILogoutReq(p iscsiPDU) (iscsiLogoutReq, error) {
	if err := iscsiWantOpcode(p, iscsiOpLogoutReq, "Logout Request"); err != nil {
		return iscsiLogoutReq{}, err
	}
	if len(p.data) != 0 {
		return iscsiLogoutReq{}, iscsiBad("Logout Request with a %d-byte data segment", len(p.data))
	}
	h := p.bhs[:]
	return iscsiLogoutReq{
		Reason: h[1] & 0x7f, ITT: binary.BigEndian.Uint32(h[16:]), CID: binary.BigEndian.Uint16(h[20:]),
		CmdSN: binary.BigEndian.Uint32(h[24:]), ExpStatSN: binary.BigEndian.Uint32(h[28:]),
	}, nil
}

func (m *iscsiLogoutResp) pdu() iscsiPDU {
	var p iscsiPDU
	p.bhs[0] = iscsiOpLogoutResp
	p.bhs[1] = iscsiFlagFinal
	p.bhs[2] = m.Response
	binary.BigEndian.PutUint32(p.bhs[16:], m.ITT)
	binary.BigEndian.PutUint32(p.bhs[24:], m.StatSN)
	binary.BigEndian.PutUint32(p.bhs[28:], m.ExpCmdSN)
	binary.BigEndian.PutUint32(p.bhs[32:], m.MaxCmdSN)
	binary.BigEndian.PutUint16(p.bhs[40:], m.Time2Wait)
	binary.BigEndian.PutUint16(p.bhs[42:], m.Time2Retain)
	return p
}

func (m *iscsiReject) pdu() iscsiPDU {
	var p iscsiPDU
	p.bhs[0] = iscsiOpReject
	p.bhs[1] = iscsiFlagFinal
	p.bhs[2] = m.Reason
	binary.BigEndian.PutUint32(p.bhs[16:], iscsiReservedTag)
	binary.BigEndian.PutUint32(p.bhs[24:], m.StatSN)
	binary.BigEndian.PutUint32(p.bhs[28:], m.ExpCmdSN)
	binary.BigEndian.PutUint32(p.bhs[32:], m.MaxCmdSN)
	binary.BigEndian.PutUint32(p.bhs[36:], m.DataSN)
	p.data = m.Data
	return p
}
