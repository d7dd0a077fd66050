package checks

// A flow expected to be blocked (expect: deny) proves the block or its
// violation with the least a check can send: it must never hand a password,
// a community or a CHAP secret to a host it is not supposed to reach.
//
//   - Every TCP kind runs a connect-level check: the connection is made
//     (the violation) or not (timeout, refused, unreachable: the block),
//     and closed at once. Nothing is sent.
//   - snmp sends an SNMPv3 engine discovery (noAuthNoPriv, empty user name,
//     RFC 3414 §4): every agent answers it with a Report without any
//     credentials, so an open path is seen even when the community or the
//     user is secret.
//   - dns, ntp, udp, icmp and the request/reply kinds over UDP (exchange.go)
//     carry no credentials and run as configured.

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/flowprobe/flowprobe/probe"
)

// denyKind is k, or, for a flow that must be blocked, the credential-free
// variant of k.
func denyKind(t probe.Target, k Kind) Kind {
	if t.Expect != probe.ExpectDeny {
		return k
	}
	switch {
	case k.Transport == probe.TCP || t.Protocol == probe.TCP || overTCP(t):
		k.Checker = probe.CheckerFunc(checkConnectOnly)
	case t.Check == "snmp":
		k.Checker = probe.CheckerFunc(checkSNMPDiscovery)
	}
	return k
}

// overTCP reports a kind that speaks UDP or TCP (dns, slp, kerberos...)
// configured for TCP.
func overTCP(t probe.Target) bool {
	o, ok := t.Options.(interface{ transport() string })
	return ok && o.transport() == "tcp"
}

// checkConnectOnly connects to the target's port (the kind's default port
// when the target has none) and closes the connection.
func checkConnectOnly(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	port := t.Port
	if port == 0 {
		k, _ := Lookup(t.Check)
		port = k.DefaultPort
	}
	conn, err := dialPort(ctx, &t, "tcp", port, &r)
	if err != nil {
		return finish(&r, err)
	}
	_ = conn.Close()
	r.SetDetail("deny_probe", "connect only")
	return finish(&r, nil)
}

// checkSNMPDiscovery sends an SNMPv3 engine discovery without credentials.
// Any answer, even a Report refusing the empty user, proves the path open.
func checkSNMPDiscovery(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	r.SetDetail("deny_probe", "snmpv3 discovery")
	addr, err := resolve(ctx, &t, &r)
	if err != nil {
		return finish(&r, err)
	}
	network := "udp6"
	if addr.Is4() {
		network = "udp4"
	}
	port := t.Port
	if port == 0 {
		port = 161
	}
	timeout := snmpDefaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Millisecond, time.Until(dl))
	}
	g := &gosnmp.GoSNMP{
		Target: addr.String(), Port: uint16(port), Transport: network,
		Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.NoAuthNoPriv,
		SecurityParameters: &gosnmp.UsmSecurityParameters{},
		Context:            ctx, Timeout: timeout, Retries: 0,
	}
	if t.SourceAddress != "" {
		g.LocalAddr = net.JoinHostPort(t.SourceAddress, "0")
	}
	start := time.Now()
	err = g.Connect()
	r.Phases[probe.PhaseConnect] = time.Since(start)
	if err != nil {
		return finish(&r, fmt.Errorf("snmp: %w", err))
	}
	defer g.Close()
	defer stopOnDone(ctx, g.Conn)()
	start = time.Now()
	_, err = g.Get([]string{snmpSysUpTime})
	r.Phases[probe.PhaseRequest] = time.Since(start)
	switch o, _ := classifyReason(err, false); o {
	case probe.OutcomeTimeout, probe.OutcomeRefused, probe.OutcomeUnreachable, probe.OutcomeLocalError:
		return finish(&r, fmt.Errorf("snmp discovery: %w", err))
	}
	// Something answered: the agent (a Report, or a reply gosnmp could not
	// use) is reachable.
	answered(&r)
	return finish(&r, nil)
}
