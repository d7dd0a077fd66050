package checks

// UDP source-address plumbing of the responder: answering each datagram
// from the address it was sent to.

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpReplier reads datagrams and answers them from the address they were
// sent to. On a socket bound to every address the kernel would otherwise
// pick the answer's source by routing, and a client's connected socket
// drops an answer from an address it did not send to.
type udpReplier interface {
	read(buf []byte) (n int, local netip.Addr, remote netip.AddrPort, err error)
	write(b []byte, local netip.Addr, remote netip.AddrPort) error
}

func newUDPReplier(c *net.UDPConn, wildcard bool) udpReplier {
	if wildcard {
		p6 := ipv6.NewPacketConn(c)
		if p6.SetControlMessage(ipv6.FlagDst, true) == nil {
			return pktinfo6{c: c, p: p6, p4: ipv4.NewPacketConn(c)}
		}
		p4 := ipv4.NewPacketConn(c)
		if p4.SetControlMessage(ipv4.FlagDst, true) == nil {
			return pktinfo4{c: c, p: p4}
		}
	}
	return plainUDP{c}
}

type plainUDP struct{ c *net.UDPConn }

func (u plainUDP) read(buf []byte) (int, netip.Addr, netip.AddrPort, error) {
	n, remote, err := u.c.ReadFromUDPAddrPort(buf)
	return n, netip.Addr{}, remote, err
}

func (u plainUDP) write(b []byte, _ netip.Addr, remote netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, remote)
	return err
}

// pktinfo6 serves a dual-stack socket. IPv4 clients arrive with a mapped
// destination address; their answers carry an IPv4 IP_PKTINFO, which
// Linux honours on an IPv6 socket sending to a mapped address (an IPv6
// pktinfo with a mapped source is ignored).
type pktinfo6 struct {
	c  *net.UDPConn
	p  *ipv6.PacketConn
	p4 *ipv4.PacketConn
}

func (u pktinfo6) read(buf []byte) (int, netip.Addr, netip.AddrPort, error) {
	n, cm, src, err := u.p.ReadFrom(buf)
	if err != nil {
		return n, netip.Addr{}, netip.AddrPort{}, err
	}
	var local netip.Addr
	if cm != nil {
		local, _ = netip.AddrFromSlice(cm.Dst)
	}
	return n, local, addrPortOf(src), nil
}

func (u pktinfo6) write(b []byte, local netip.Addr, remote netip.AddrPort) error {
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(mapTo6(remote.Addr()), remote.Port()))
	if local.Unmap().Is4() {
		_, err := u.p4.WriteTo(b, &ipv4.ControlMessage{Src: net.IP(local.Unmap().AsSlice())}, dst)
		return err
	}
	var cm *ipv6.ControlMessage
	if local.IsValid() {
		cm = &ipv6.ControlMessage{Src: net.IP(local.AsSlice())}
	}
	_, err := u.p.WriteTo(b, cm, dst)
	return err
}

func mapTo6(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.AddrFrom16(a.As16())
	}
	return a
}

// pktinfo4 is pktinfo6 for an IPv4 socket. The two read methods have the
// same shape on purpose: x/net's ipv4 and ipv6 packages share no type for
// a packet conn or its control message.
type pktinfo4 struct {
	c *net.UDPConn
	p *ipv4.PacketConn
}

func (u pktinfo4) read(buf []byte) (int, netip.Addr, netip.AddrPort, error) {
	n, cm, src, err := u.p.ReadFrom(buf)
	if err != nil {
		return n, netip.Addr{}, netip.AddrPort{}, err
	}
	var local netip.Addr
	if cm != nil {
		local, _ = netip.AddrFromSlice(cm.Dst)
	}
	return n, local.Unmap(), addrPortOf(src), nil
}

func (u pktinfo4) write(b []byte, local netip.Addr, remote netip.AddrPort) error {
	var cm *ipv4.ControlMessage
	if local.IsValid() {
		cm = &ipv4.ControlMessage{Src: net.IP(local.AsSlice())}
	}
	_, err := u.p.WriteTo(b, cm, net.UDPAddrFromAddrPort(remote))
	return err
}
