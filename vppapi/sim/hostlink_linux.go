package sim

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.fd.io/govpp/api"
	"golang.org/x/sys/unix"
)

// The Linux side of the host-facing devices: what tap.c and af_packet.c do
// to the kernel, done for real so that pods see their interface.

// Offload bits of TUNSETOFFLOAD (linux/if_tun.h).
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
)

// virtioNetHdrV1Size is sizeof (vnet_virtio_net_hdr_v1_t), the vnet header
// size tap_create_if sets.
const virtioNetHdrV1Size = 12

// hostTap holds the queue file descriptors of a tap or tun device. Without
// IFF_PERSIST the kernel removes the device when the last one closes.
type hostTap struct {
	name string // the Linux name TUNSETIFF answered
	fds  []int
}

// tapRequest is what tap_create_if asks of the kernel.
type tapRequest struct {
	namespace  string // clib_netns_open syntax; empty: VPP's own
	name       string // empty: the kernel picks tapN / tunN
	tun        bool
	queues     int
	persist    bool
	attach     bool
	offload    uint // TUNSETOFFLOAD bits
	noVhostNet bool
	hostMAC    net.HardwareAddr // set on TAP devices only
	bridge     string
	ip4, ip6   netip.Prefix // invalid: not set
	gw4, gw6   netip.Addr
	mtu        uint32 // 0: leave the kernel's
}

// hostErr is a failed kernel step with the retval VPP answers for it.
type hostErr struct {
	rv  int32
	err error
}

func (e *hostErr) Error() string { return e.err.Error() }
func (e *hostErr) Unwrap() error { return e.err }

func failed(rv api.VPPApiError, format string, args ...any) *hostErr {
	return &hostErr{rv: int32(rv), err: fmt.Errorf(format, args...)}
}

// netnsPath is clib_netns_open's naming: "pid:N", an absolute path, or a
// name under /var/run/netns.
func netnsPath(ns string) string {
	switch {
	case strings.HasPrefix(ns, "pid:"):
		pid, _ := strconv.Atoi(ns[4:]) // atoi: garbage reads as 0
		return fmt.Sprintf("/proc/%d/ns/net", pid)
	case strings.HasPrefix(ns, "/"):
		return ns
	}
	return "/var/run/netns/" + ns
}

// inNetns runs fn with the calling thread in the named namespace, as
// tap_create_if does between its two clib_setns calls. It runs on a thread
// of its own: when the original namespace cannot be restored that thread
// stays locked and dies with its goroutine instead of serving other code
// in the wrong namespace.
func inNetns(ns string, fn func() *hostErr) *hostErr {
	if ns == "" {
		return fn()
	}
	done := make(chan *hostErr, 1)
	go func() {
		runtime.LockOSThread()
		herr, restored := enterAndRun(ns, fn)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- herr
	}()
	return <-done
}

func enterAndRun(ns string, fn func() *hostErr) (*hostErr, bool) {
	orig, err := netns.Get()
	if err != nil {
		return failed(api.SYSCALL_ERROR_2, "opening the current network namespace: %w", err), true
	}
	defer orig.Close()
	target, err := netns.GetFromPath(netnsPath(ns))
	if err != nil {
		return failed(api.SYSCALL_ERROR_2, "clib_netns_open %q: %w", ns, err), true
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return failed(api.SYSCALL_ERROR_3, "setns %q: %w", ns, err), true
	}
	herr := fn()
	if err := netns.Set(orig); err != nil {
		return failed(api.SYSCALL_ERROR_2, "setns back from %q: %w", ns, err), false
	}
	return herr, true
}

// openHostTap is the kernel part of tap_create_if, in its order: the
// namespace, /dev/net/tun and TUNSETIFF, persistence, the extra queues,
// their vnet header size, send buffer and offloads, vhost-net, then the
// host-side MAC, bridge, addresses, link up, gateways and MTU. On failure
// the caller still gets what was opened, to close as tap_free does.
func openHostTap(req tapRequest) (*hostTap, *hostErr) {
	t := &hostTap{}
	herr := inNetns(req.namespace, func() *hostErr { return t.setup(req) })
	return t, herr
}

func (t *hostTap) setup(req tapRequest) *hostErr {
	flags := uint16(unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	sndbuf := math.MaxInt32
	if req.tun {
		flags |= unix.IFF_TUN
		sndbuf = math.MaxInt32 - 1 // keeps vhost off tun's XDP path, as tap.c explains
	} else {
		flags |= unix.IFF_TAP
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return failed(api.SYSCALL_ERROR_2, "open '/dev/net/tun': %w", err)
	}
	t.fds = append(t.fds, fd)
	features, err := unix.IoctlGetUint32(fd, unix.TUNGETFEATURES)
	if err != nil {
		return failed(api.SYSCALL_ERROR_3, "ioctl(TUNGETFEATURES): %w", err)
	}
	if features&unix.IFF_VNET_HDR == 0 {
		return failed(api.SYSCALL_ERROR_2, "vhost-net backend not available")
	}
	queues := max(req.queues, 1)
	if features&unix.IFF_MULTI_QUEUE == 0 {
		if queues > 1 {
			return failed(api.SYSCALL_ERROR_2, "multiqueue not supported")
		}
	} else {
		flags |= unix.IFF_MULTI_QUEUE
	}
	// VPP copies at most IFNAMSIZ bytes; the kernel keeps IFNAMSIZ-1.
	name := req.name
	if len(name) >= unix.IFNAMSIZ {
		name = name[:unix.IFNAMSIZ-1]
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETIFF) %q: %w", name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETIFF) %q: %w", name, err)
	}
	t.name = ifr.Name()
	if req.attach {
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0); err != nil {
			return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETPERSIST) %s: %w", t.name, err)
		}
	}
	if req.persist {
		if herr := t.setPersist(); herr != nil {
			return herr
		}
	}
	for i := 1; i < queues; i++ {
		qfd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return failed(api.SYSCALL_ERROR_2, "open '/dev/net/tun': %w", err)
		}
		t.fds = append(t.fds, qfd)
		qifr, _ := unix.NewIfreq(t.name)
		qifr.SetUint16(flags)
		if err := unix.IoctlIfreq(qfd, unix.TUNSETIFF, qifr); err != nil {
			return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETIFF) queue %d of %s: %w", i, t.name, err)
		}
	}
	for _, qfd := range t.fds {
		if err := unix.IoctlSetPointerInt(qfd, unix.TUNSETVNETHDRSZ, virtioNetHdrV1Size); err != nil {
			return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETVNETHDRSZ) %s: %w", t.name, err)
		}
		if err := unix.IoctlSetPointerInt(qfd, unix.TUNSETSNDBUF, sndbuf); err != nil {
			return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETSNDBUF) %s: %w", t.name, err)
		}
		if err := unix.IoctlSetInt(qfd, unix.TUNSETOFFLOAD, int(req.offload)); err != nil {
			return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETOFFLOAD) %s: %w", t.name, err)
		}
	}
	// The simulator moves no packets, so it never needs vhost-net; it can
	// still fail where VPP would on a host without it.
	if req.noVhostNet {
		return failed(api.SYSCALL_ERROR_1, "open '/dev/vhost-net': %w", os.ErrNotExist)
	}
	return t.configureHostSide(req)
}

func (t *hostTap) setPersist() *hostErr {
	if err := unix.IoctlSetInt(t.fds[0], unix.TUNSETPERSIST, 1); err != nil {
		return failed(api.SYSCALL_ERROR_3, "ioctl(TUNSETPERSIST) %s: %w", t.name, err)
	}
	ifr, _ := unix.NewIfreq("")
	if err := unix.IoctlIfreq(t.fds[0], unix.TUNGETIFF, ifr); err != nil {
		return failed(api.SYSCALL_ERROR_3, "ioctl(TUNGETIFF) %s: %w", t.name, err)
	}
	if ifr.Uint16()&unix.IFF_PERSIST == 0 {
		return failed(api.SYSCALL_ERROR_2, "persistence not supported")
	}
	return nil
}

// configureHostSide applies the host_* settings over netlink, each failure
// being NETLINK_ERROR as in tap_create_if.
func (t *hostTap) configureHostSide(req tapRequest) *hostErr {
	link, err := netlink.LinkByName(t.name)
	if err != nil {
		return failed(api.NETLINK_ERROR, "host interface %s: %w", t.name, err)
	}
	nlErr := func(what string, err error) *hostErr {
		return failed(api.NETLINK_ERROR, "%s on host interface %s: %w", what, t.name, err)
	}
	if !req.tun {
		if err := netlink.LinkSetHardwareAddr(link, req.hostMAC); err != nil {
			return nlErr("setting the MAC address", err)
		}
		if req.bridge != "" {
			br, err := netlink.LinkByName(req.bridge)
			if err != nil {
				return nlErr("finding bridge "+req.bridge, err)
			}
			if err := netlink.LinkSetMasterByIndex(link, br.Attrs().Index); err != nil {
				return nlErr("joining bridge "+req.bridge, err)
			}
		}
	}
	for _, p := range []netip.Prefix{req.ip4, req.ip6} {
		if !p.IsValid() {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if err := netlink.AddrAdd(link, a); err != nil {
			return nlErr("adding address "+p.String(), err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nlErr("setting the link up", err)
	}
	for _, gw := range []netip.Addr{req.gw4, req.gw6} {
		if !gw.IsValid() {
			continue
		}
		// vnet_netlink_add_ip4_route (0, 0, gw): a default route, no device.
		r := &netlink.Route{Gw: gw.AsSlice()}
		if err := netlink.RouteAdd(r); err != nil {
			return nlErr("adding the default route via "+gw.String(), err)
		}
	}
	if req.mtu != 0 {
		if err := netlink.LinkSetMTU(link, int(req.mtu)); err != nil {
			return nlErr("setting the MTU", err)
		}
	}
	return nil
}

// close is tap_free's part on the kernel side: unset persistence when asked
// (a deleted tap), then close every queue.
func (t *hostTap) close(unsetPersist bool) {
	if t == nil {
		return
	}
	if unsetPersist && len(t.fds) > 0 {
		_ = unix.IoctlSetInt(t.fds[0], unix.TUNSETPERSIST, 0)
	}
	for _, fd := range t.fds {
		_ = unix.Close(fd)
	}
	t.fds = nil
}

// hostInterface is what af_packet_create_if learns of a Linux interface in
// VPP's own namespace.
type hostInterface struct {
	index    int // -1 for a bridge, whose state af_packet leaves alone
	mtu      int
	isBridge bool
}

// bindHostInterface follows af_packet_create_if up to the socket setup:
// the interface must exist (SIOCGIFINDEX, else INVALID_INTERFACE) and is
// brought up when it is down (else SYSCALL_ERROR_1).
func bindHostInterface(name string) (hostInterface, *hostErr) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return hostInterface{}, failed(api.INVALID_INTERFACE, "host interface %q: %w", name, err)
	}
	attrs := link.Attrs()
	if attrs.Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return hostInterface{}, failed(api.SYSCALL_ERROR_1, "setting host interface %q up: %w", name, err)
		}
	}
	hi := hostInterface{index: attrs.Index, mtu: attrs.MTU}
	if link.Type() == "bridge" {
		hi.index, hi.isBridge = -1, true
	}
	return hi, nil
}

// setHostLinkState is vnet_netlink_set_link_state on VPP's namespace;
// af_packet ignores its failure.
func setHostLinkState(index int, up bool) error {
	link, err := netlink.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("host interface %d: %w", index, err)
	}
	if up {
		err = netlink.LinkSetUp(link)
	} else {
		err = netlink.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("setting host interface %s up=%t: %w", link.Attrs().Name, up, err)
	}
	return nil
}
