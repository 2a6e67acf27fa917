package bgp

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"
)

// shutdownTCP shuts down, in both directions, this process's connected TCP
// sockets for which match returns true, and returns how many it shut down.
// shutdown(2) ends the connection with a FIN while leaving the descriptor
// to its owner (GoBGP), which then reads EOF; closing the descriptor would
// break Go's poller.
func shutdownTCP(match func(local, remote netip.AddrPort) bool) (int, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("listing file descriptors: %w", err)
	}
	n := 0
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// The descriptor may be closed and reused meanwhile; matching the
		// whole address pair makes acting on a stranger impossible.
		typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
		if err != nil || typ != syscall.SOCK_STREAM {
			continue
		}
		local, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		remote, err := syscall.Getpeername(fd)
		if err != nil {
			continue // a listener, or not connected
		}
		l, lok := addrPort(local)
		r, rok := addrPort(remote)
		if !lok || !rok || !match(l, r) {
			continue
		}
		if err := syscall.Shutdown(fd, syscall.SHUT_RDWR); err != nil {
			return n, fmt.Errorf("shutting down the connection %s -> %s: %w", l, r, err)
		}
		n++
	}
	return n, nil
}

func addrPort(sa syscall.Sockaddr) (netip.AddrPort, bool) {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), true
	}
	return netip.AddrPort{}, false
}
