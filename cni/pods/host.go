package pods

import (
	"context"
	"net"
	"path/filepath"

	"github.com/kube-vpp/kube-vpp/cni/podnet"
)

// hostSide is what plumbing a pod does on the node outside VPP: the pod's
// network namespace, its veth and the configuration inside the namespace.
// The manager goes through it for all of these, so that virtual pods
// (Config.Virtual) can do without any.
type hostSide interface {
	// standaloneNetns is the namespace a manifest pod gets; "" for none.
	standaloneNetns(containerID string) string
	checkNetns(path string) error
	ensureNetns(path string) error
	removeNetns(path string) error
	// createVeth returns the MAC address of the pod's end.
	createVeth(ctx context.Context, netns, podIfName, hostIfName string, mtu int) (net.HardwareAddr, error)
	deleteVeth(ctx context.Context, hostIfName string) error
	configure(ctx context.Context, cfg podnet.Config) error
	check(ctx context.Context, cfg podnet.Config) error
	remove(ctx context.Context, netns, ifName string) error
}

func newHostSide(virtual bool) hostSide {
	if virtual {
		return virtualHost{}
	}
	return linuxHost{}
}

// linuxHost plumbs pods for real, with netlink.
type linuxHost struct{}

func (linuxHost) standaloneNetns(containerID string) string {
	return filepath.Join(netnsDir, "kvpp-"+shortID(containerID))
}

func (linuxHost) checkNetns(path string) error { return podnet.CheckNetns(path) }

func (linuxHost) ensureNetns(path string) error {
	_, err := ensureNetns(filepath.Base(path))
	return err
}

func (linuxHost) removeNetns(path string) error { return removeNetns(path) }

func (linuxHost) createVeth(ctx context.Context, netns, podIfName, hostIfName string, mtu int) (net.HardwareAddr, error) {
	v, err := podnet.CreateVeth(ctx, netns, podIfName, hostIfName, mtu)
	return v.PodMAC, err
}

func (linuxHost) deleteVeth(ctx context.Context, hostIfName string) error {
	return podnet.DeleteVeth(ctx, hostIfName)
}

func (linuxHost) configure(ctx context.Context, cfg podnet.Config) error {
	_, err := podnet.Configure(ctx, cfg)
	return err
}

func (linuxHost) check(ctx context.Context, cfg podnet.Config) error { return podnet.Check(ctx, cfg) }

func (linuxHost) remove(ctx context.Context, netns, ifName string) error {
	return podnet.Remove(ctx, netns, ifName)
}

// virtualHost is the host side of virtual pods: there is none. A pod has
// no namespace (its path is ""), which therefore never counts as gone.
type virtualHost struct{}

func (virtualHost) standaloneNetns(string) string { return "" }
func (virtualHost) checkNetns(string) error       { return nil }
func (virtualHost) ensureNetns(string) error      { return nil }
func (virtualHost) removeNetns(string) error      { return nil }
func (virtualHost) createVeth(context.Context, string, string, string, int) (net.HardwareAddr, error) {
	return nil, nil
}
func (virtualHost) deleteVeth(context.Context, string) error       { return nil }
func (virtualHost) configure(context.Context, podnet.Config) error { return nil }
func (virtualHost) check(context.Context, podnet.Config) error     { return nil }
func (virtualHost) remove(context.Context, string, string) error   { return nil }
