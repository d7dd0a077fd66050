//go:build !linux

package checks

import "net"

// forceReadBuffer is a Linux socket option; elsewhere SetReadBuffer does.
func forceReadBuffer(net.PacketConn, int) bool { return false }
