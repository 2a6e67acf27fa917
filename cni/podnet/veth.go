package podnet

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Veth describes a veth pair made by CreateVeth.
type Veth struct {
	// HostIndex is the host end's ifindex in the agent's namespace.
	HostIndex int
	HostMAC   net.HardwareAddr
	PodMAC    net.HardwareAddr
}

// CreateVeth makes a veth pair: hostIfName in the caller's (the agent's)
// namespace, set up for VPP's af_packet to attach to, and podIfName inside the
// namespace at netnsPath, left down for Configure. Both ends get mtu unless it
// is 0. If the pair already exists exactly so, it is returned as it is; a
// host name held by anything else is an error.
func CreateVeth(ctx context.Context, netnsPath, podIfName, hostIfName string, mtu int) (Veth, error) {
	where := fmt.Sprintf("veth %s (pod end %s in %s)", hostIfName, podIfName, netnsPath)
	if err := validIfName(hostIfName); err != nil {
		return Veth{}, fmt.Errorf("%s: host name: %w", where, err)
	}
	if err := validIfName(podIfName); err != nil {
		return Veth{}, fmt.Errorf("%s: pod name: %w", where, err)
	}
	if err := validMTU(mtu); err != nil {
		return Veth{}, fmt.Errorf("%s: %w", where, err)
	}
	pod, err := openAt(ctx, netnsPath)
	if err != nil {
		return Veth{}, fmt.Errorf("veth %s: %w", hostIfName, err)
	}
	defer pod.Close()
	host, err := openHost(ctx)
	if err != nil {
		return Veth{}, fmt.Errorf("%s: %w", where, err)
	}
	defer host.Close()
	pair := vethPair{host: host, pod: pod, hostName: hostIfName, podName: podIfName}
	v, err := pair.ensure(mtu)
	if err != nil {
		return Veth{}, fmt.Errorf("%s: %w", where, err)
	}
	return v, nil
}

// DeleteVeth deletes the veth whose host end is hostIfName in the caller's
// namespace, which takes its pod end with it. An absent link is not an error;
// a link of that name that is not a veth is refused, not deleted.
func DeleteVeth(ctx context.Context, hostIfName string) error {
	if err := validIfName(hostIfName); err != nil {
		return fmt.Errorf("veth %q: host name: %w", hostIfName, err)
	}
	host, err := openHost(ctx)
	if err != nil {
		return fmt.Errorf("veth %s: %w", hostIfName, err)
	}
	defer host.Close()
	link, err := linkByName(host, hostIfName)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("veth %s: %w", hostIfName, err)
	}
	if _, ok := link.(*netlink.Veth); !ok {
		return fmt.Errorf("veth %s: link is a %s, not a veth; not deleting it", hostIfName, link.Type())
	}
	if err := host.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("veth %s: delete: %w", hostIfName, err)
	}
	return nil
}

// Remove deletes the pod interface ifName inside the namespace at netnsPath
// if it is still there. A namespace that is gone (its path missing, or no
// longer a namespace once unmounted) leaves nothing to do.
func Remove(ctx context.Context, netnsPath, ifName string) error {
	if err := validIfName(ifName); err != nil {
		return fmt.Errorf("pod interface %q in %s: %w", ifName, netnsPath, err)
	}
	h, err := openAt(ctx, netnsPath)
	if errors.Is(err, ErrNetnsNotFound) || errors.Is(err, ErrNotNetns) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", ifName, err)
	}
	defer h.Close()
	link, err := linkByName(h.Handle, ifName)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s in %s: %w", ifName, netnsPath, err)
	}
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("%s in %s: delete link: %w", ifName, netnsPath, err)
	}
	return nil
}

// vethPair is one CreateVeth call's view of both namespaces.
type vethPair struct {
	host              *netlink.Handle
	pod               *nsHandle
	hostName, podName string
}

func (p vethPair) ensure(mtu int) (Veth, error) {
	hostLink, err := linkByName(p.host, p.hostName)
	switch {
	case errors.Is(err, ErrLinkNotFound):
		if err := p.create(mtu); err != nil {
			return Veth{}, err
		}
	case err != nil:
		return Veth{}, fmt.Errorf("host end: %w", err)
	default:
		if err := p.verify(hostLink); err != nil {
			return Veth{}, err
		}
	}
	return p.finish(mtu)
}

// create adds the pair with the pod end born inside the pod's namespace, so
// its name never has to be free in the agent's.
func (p vethPair) create(mtu int) error {
	if _, err := linkByName(p.pod.Handle, p.podName); err == nil {
		return fmt.Errorf("link %s already exists in %s", p.podName, p.pod.path)
	} else if !errors.Is(err, ErrLinkNotFound) {
		return fmt.Errorf("pod end: %w", err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.hostName, MTU: mtu},
		PeerName:      p.podName,
		PeerNamespace: netlink.NsFd(int(p.pod.ns)),
		PeerMTU:       uint32(mtu),
	}
	if err := p.host.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create: host name %s is taken: %w", p.hostName, err)
		}
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

// verify accepts an existing host link only if it is a veth whose peer is
// podName inside the pod's namespace: each end names the other's ifindex
// (IFLA_LINK) and the host end points at the pod's namespace id.
func (p vethPair) verify(hostLink netlink.Link) error {
	taken := fmt.Errorf("host name %s is taken by a %s link that is not the peer of %s in %s",
		p.hostName, hostLink.Type(), p.podName, p.pod.path)
	if _, ok := hostLink.(*netlink.Veth); !ok {
		return taken
	}
	podLink, err := linkByName(p.pod.Handle, p.podName)
	if errors.Is(err, ErrLinkNotFound) {
		return taken
	}
	if err != nil {
		return fmt.Errorf("pod end: %w", err)
	}
	h, q := hostLink.Attrs(), podLink.Attrs()
	if _, ok := podLink.(*netlink.Veth); !ok || h.ParentIndex != q.Index || q.ParentIndex != h.Index {
		return taken
	}
	nsid, err := p.host.GetNetNsIdByFd(int(p.pod.ns))
	if err != nil {
		return fmt.Errorf("namespace id of %s: %w", p.pod.path, err)
	}
	if nsid < 0 || h.NetNsID != nsid {
		return taken
	}
	return nil
}

// finish sets MTU and the host end up where needed and reads both ends back.
func (p vethPair) finish(mtu int) (Veth, error) {
	hostLink, err := linkByName(p.host, p.hostName)
	if err != nil {
		return Veth{}, fmt.Errorf("host end: %w", err)
	}
	podLink, err := linkByName(p.pod.Handle, p.podName)
	if err != nil {
		return Veth{}, fmt.Errorf("pod end: %w", err)
	}
	if mtu != 0 && hostLink.Attrs().MTU != mtu {
		if err := p.host.LinkSetMTU(hostLink, mtu); err != nil {
			return Veth{}, fmt.Errorf("host end: set MTU %d: %w", mtu, err)
		}
	}
	if mtu != 0 && podLink.Attrs().MTU != mtu {
		if err := p.pod.LinkSetMTU(podLink, mtu); err != nil {
			return Veth{}, fmt.Errorf("pod end: set MTU %d: %w", mtu, err)
		}
	}
	// af_packet reads frames from the host end only while it is up.
	if hostLink.Attrs().Flags&net.FlagUp == 0 {
		if err := p.host.LinkSetUp(hostLink); err != nil {
			return Veth{}, fmt.Errorf("host end: set up: %w", err)
		}
	}
	return Veth{
		HostIndex: hostLink.Attrs().Index,
		HostMAC:   append(net.HardwareAddr(nil), hostLink.Attrs().HardwareAddr...),
		PodMAC:    append(net.HardwareAddr(nil), podLink.Attrs().HardwareAddr...),
	}, nil
}
