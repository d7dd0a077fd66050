package checks

import (
	"net"
	"syscall"
)

// forceReadBuffer sets SO_RCVBUFFORCE, which goes beyond net.core.rmem_max
// when the process has CAP_NET_ADMIN, and reports whether it could.
func forceReadBuffer(pc net.PacketConn, size int) bool {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
	}); err != nil {
		return false
	}
	return serr == nil
}
