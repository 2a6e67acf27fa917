//go:build !linux

package bgp

import (
	"errors"
	"net/netip"
)

// shutdownTCP needs /proc/self/fd, which only Linux has.
func shutdownTCP(func(local, remote netip.AddrPort) bool) (int, error) {
	return 0, errors.New("closing connections without NOTIFICATION is only implemented on Linux")
}
