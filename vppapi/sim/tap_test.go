package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/binapi/tapv2"
)

// requireNetAdmin skips tests that create real Linux devices.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and tap devices")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
}

func randomName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// newNetns creates a named network namespace, removed when the test ends,
// and returns its name and a netlink handle inside it.
func newNetns(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	name := randomName(t, "kvsim-")
	errc := make(chan error, 1)
	go func() {
		// netns.NewNamed moves the thread into the new namespace; this
		// thread goes back or dies with the goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			_ = netns.Set(orig)
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ns.Close()
		if err := netns.Set(orig); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return name, h
}

type tapFixture struct {
	*fixture
	tap tapv2.RPCService
}

func newTapFixture(t *testing.T, opts Options) *tapFixture {
	t.Helper()
	s, conn, _ := startSim(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, sim: s, conn: conn, ifs: interfaces.NewServiceClient(conn), ip: ip.NewServiceClient(conn)}
	return &tapFixture{fixture: f, tap: tapv2.NewServiceClient(conn)}
}

func (f *tapFixture) create(req *tapv2.TapCreateV3) (uint32, int32) {
	f.t.Helper()
	r, err := f.tap.TapCreateV3(f.ctx, req)
	if rv := retval(f.t, err); rv != 0 {
		return uint32(r.SwIfIndex), rv
	}
	return uint32(r.SwIfIndex), 0
}

func (f *tapFixture) dumpTaps(idx uint32) []*tapv2.SwInterfaceTapV2Details {
	f.t.Helper()
	st, err := f.tap.SwInterfaceTapV2Dump(f.ctx, &tapv2.SwInterfaceTapV2Dump{SwIfIndex: interface_types.InterfaceIndex(idx)})
	if err != nil {
		f.t.Fatal(err)
	}
	return recvAll(f.t, st.Recv)
}

func linkGone(t *testing.T, h *netlink.Handle, name string) bool {
	t.Helper()
	_, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		t.Fatalf("looking up %s: %v", name, err)
	}
	return err != nil
}

// TestTapCreateInNamespace checks tap_create_v3's effect on Linux (tap.c
// tap_create_if: TUNSETIFF inside host_namespace, then host MAC, link up
// and MTU) and on VPP's interface table, then that tap_delete_v2 and the
// simulator's death remove the device.
func TestTapCreateInNamespace(t *testing.T) {
	requireNetAdmin(t)
	ns, h := newNetns(t)
	f := newTapFixture(t, Options{})
	hostMAC := ethernet_types.MacAddress{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01}
	vppMAC := ethernet_types.MacAddress{0x02, 0xfe, 0, 0, 0, 0x10}
	idx, rv := f.create(&tapv2.TapCreateV3{
		ID: 7, MacAddress: vppMAC, HostIfNameSet: true, HostIfName: "eth0",
		HostNamespaceSet: true, HostNamespace: ns, HostMtuSet: true, HostMtuSize: 1400,
		HostMacAddrSet: true, HostMacAddr: hostMAC, Tag: "pod-a",
		HostIP4PrefixSet: true, HostIP4Prefix: ip_types.IP4AddressWithPrefix{Address: [4]byte{10, 1, 0, 5}, Len: 24},
	})
	if rv != 0 {
		t.Fatalf("tap_create_v3: retval %d", rv)
	}
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("eth0 in %s: %v", ns, err)
	}
	a := link.Attrs()
	if a.MTU != 1400 || a.Flags&net.FlagUp == 0 || a.HardwareAddr.String() != "02:aa:bb:cc:dd:01" {
		t.Errorf("host eth0: mtu %d up %t mac %s, want 1400 true 02:aa:bb:cc:dd:01", a.MTU, a.Flags&net.FlagUp != 0, a.HardwareAddr)
	}
	if _, ok := link.(*netlink.Tuntap); !ok {
		t.Errorf("host eth0 is a %s, want tuntap", link.Type())
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.1.0.5/24" {
		t.Errorf("host eth0 addresses %v (%v), want 10.1.0.5/24", addrs, err)
	}

	// The VPP side: "tap<id>", virtio device class, link up while admin down.
	ifs := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(idx)})
	if len(ifs) != 1 {
		t.Fatalf("sw_interface_dump %d: %d details", idx, len(ifs))
	}
	d := ifs[0]
	if d.InterfaceName != "tap7" || d.InterfaceDevType != "virtio" || d.Tag != "pod-a" ||
		d.Flags != interface_types.IF_STATUS_API_FLAG_LINK_UP || d.L2Address != vppMAC || d.Mtu[0] != 9000 {
		t.Errorf("details = %+v", d)
	}
	taps := f.dumpTaps(noIndex)
	if len(taps) != 1 {
		t.Fatalf("sw_interface_tap_v2_dump: %d details", len(taps))
	}
	want := tapv2.SwInterfaceTapV2Details{
		SwIfIndex: idx, ID: 7, TxRingSz: 256, RxRingSz: 256, HostMtuSize: 1400, HostMacAddr: hostMAC,
		HostIP4Prefix: ip_types.IP4AddressWithPrefix{Address: [4]byte{10, 1, 0, 5}, Len: 24},
		DevName:       "tap7", HostIfName: "eth0", HostNamespace: ns,
	}
	if *taps[0] != want {
		t.Errorf("tap details = %+v, want %+v", *taps[0], want)
	}

	// tap_delete_v2 removes the Linux device.
	if _, err := f.tap.TapDeleteV2(f.ctx, &tapv2.TapDeleteV2{SwIfIndex: interface_types.InterfaceIndex(idx)}); err != nil {
		t.Fatalf("tap_delete_v2: %v", err)
	}
	if !linkGone(t, h, "eth0") {
		t.Error("eth0 still in the namespace after tap_delete_v2")
	}
	if got := f.dumpTaps(noIndex); len(got) != 0 {
		t.Errorf("taps after delete: %+v", got)
	}

	// A dying VPP takes its taps with it.
	if _, rv := f.create(&tapv2.TapCreateV3{ID: noIndex, UseRandomMac: true, HostIfNameSet: true, HostIfName: "eth1",
		HostNamespaceSet: true, HostNamespace: ns}); rv != 0 {
		t.Fatalf("second tap: retval %d", rv)
	}
	if linkGone(t, h, "eth1") {
		t.Fatal("eth1 missing after create")
	}
	if err := f.sim.Close(); err != nil {
		t.Fatal(err)
	}
	if !linkGone(t, h, "eth1") {
		t.Error("eth1 still in the namespace after the simulator closed")
	}
}

// TestTapCreateErrors checks tap_create_if's retvals in its order.
func TestTapCreateErrors(t *testing.T) {
	requireNetAdmin(t)
	ns, h := newNetns(t)
	tests := []struct {
		name       string
		opts       Options
		first      *tapv2.TapCreateV3 // created before, must succeed
		req        tapv2.TapCreateV3
		want       int32
		goneInHost string // a name that must not exist in ns afterwards
	}{{
		name:  "id already used",
		first: &tapv2.TapCreateV3{ID: 3, HostIfNameSet: true, HostIfName: "p0", HostNamespaceSet: true, HostNamespace: ns},
		req:   tapv2.TapCreateV3{ID: 3, HostIfNameSet: true, HostIfName: "p1", HostNamespaceSet: true, HostNamespace: ns},
		want:  int32(api.INVALID_INTERFACE), goneInHost: "p1",
	}, {
		name: "attach without host_if_name",
		req:  tapv2.TapCreateV3{ID: noIndex, TapFlags: tapv2.TAP_API_FLAG_ATTACH},
		want: int32(api.NO_MATCHING_INTERFACE),
	}, {
		name: "namespace that doesn't exist",
		req:  tapv2.TapCreateV3{ID: noIndex, HostNamespaceSet: true, HostNamespace: "kvsim-missing-ns"},
		want: int32(api.SYSCALL_ERROR_2),
	}, {
		name: "host name taken by a non-tun device fails TUNSETIFF",
		req:  tapv2.TapCreateV3{ID: noIndex, HostIfNameSet: true, HostIfName: "lo", HostNamespaceSet: true, HostNamespace: ns},
		want: int32(api.SYSCALL_ERROR_3),
	}, {
		name: "no vhost-net: fails after TUNSETIFF, device removed",
		opts: Options{NoVhostNet: true},
		req:  tapv2.TapCreateV3{ID: noIndex, HostIfNameSet: true, HostIfName: "p2", HostNamespaceSet: true, HostNamespace: ns},
		want: int32(api.SYSCALL_ERROR_1), goneInHost: "p2",
	}, {
		name: "ring size not a power of two: vring init fails, device removed",
		req: tapv2.TapCreateV3{ID: noIndex, RxRingSz: 100, HostIfNameSet: true, HostIfName: "p3",
			HostNamespaceSet: true, HostNamespace: ns},
		want: int32(api.INIT_FAILED), goneInHost: "p3",
	}, {
		name: "bridge that doesn't exist is a netlink error",
		req: tapv2.TapCreateV3{ID: noIndex, HostIfNameSet: true, HostIfName: "p4", HostNamespaceSet: true,
			HostNamespace: ns, HostBridgeSet: true, HostBridge: "nobr0"},
		want: int32(api.NETLINK_ERROR), goneInHost: "p4",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTapFixture(t, tc.opts)
			if tc.first != nil {
				if _, rv := f.create(tc.first); rv != 0 {
					t.Fatalf("first create: retval %d", rv)
				}
			}
			idx, rv := f.create(&tc.req)
			if rv != tc.want {
				t.Fatalf("retval = %d, want %d", rv, tc.want)
			}
			if idx != noIndex {
				t.Errorf("sw_if_index = %d, want ~0 on failure", idx)
			}
			if tc.goneInHost != "" && !linkGone(t, h, tc.goneInHost) {
				t.Errorf("%s left in the namespace", tc.goneInHost)
			}
			want := 0
			if tc.first != nil {
				want = 1
			}
			if got := len(f.dumpTaps(noIndex)); got != want {
				t.Errorf("%d taps, want %d", got, want)
			}
		})
	}
}

// TestTunAndDelete checks TUN mode (format_virtio_device_name "tun<id>", no
// L2 address, MTU 1500 without host MTU), automatic ids, tap_delete_v2 on a
// non-tap and the dump's index filter.
func TestTunAndDelete(t *testing.T) {
	requireNetAdmin(t)
	ns, h := newNetns(t)
	f := newTapFixture(t, Options{})
	tap0, rv := f.create(&tapv2.TapCreateV3{ID: noIndex, UseRandomMac: true, HostNamespaceSet: true, HostNamespace: ns})
	if rv != 0 {
		t.Fatalf("tap: retval %d", rv)
	}
	tun1, rv := f.create(&tapv2.TapCreateV3{ID: noIndex, TapFlags: tapv2.TAP_API_FLAG_TUN, HostNamespaceSet: true,
		HostNamespace: ns, HostIfNameSet: true, HostIfName: "tunx"})
	if rv != 0 {
		t.Fatalf("tun: retval %d", rv)
	}
	d := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(tun1)})[0]
	if d.InterfaceName != "tun1" || d.L2Address != (ethernet_types.MacAddress{}) || d.Mtu[0] != 1500 {
		t.Errorf("tun details: name %q l2 %v mtu %v", d.InterfaceName, d.L2Address, d.Mtu)
	}
	d0 := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(tap0)})[0]
	if d0.InterfaceName != "tap0" || d0.L2Address[0] != 0x02 || d0.L2Address[1] != 0xfe {
		t.Errorf("tap0 details: name %q mac %v, want tap0 02:fe:..", d0.InterfaceName, d0.L2Address)
	}
	taps := f.dumpTaps(tun1)
	if len(taps) != 1 || taps[0].HostIfName != "tunx" || taps[0].TapFlags != tapv2.TAP_API_FLAG_TUN {
		t.Errorf("dump of tun1: %+v", taps)
	}
	if taps := f.dumpTaps(0); len(taps) != 0 {
		t.Errorf("dump filtered on local0: %+v", taps)
	}
	if taps := f.dumpTaps(99); len(taps) != 0 {
		t.Errorf("dump filtered on a missing index: %+v", taps)
	}
	if _, err := h.LinkByName(taps0Name(t, f, tap0)); err != nil {
		t.Errorf("kernel-named tap: %v", err)
	}
	// tap_delete_if refuses anything but a virtio interface.
	for _, idx := range []uint32{0, 42} {
		_, err := f.tap.TapDeleteV2(f.ctx, &tapv2.TapDeleteV2{SwIfIndex: interface_types.InterfaceIndex(idx)})
		if rv := retval(t, err); rv != int32(api.INVALID_SW_IF_INDEX) {
			t.Errorf("delete %d: retval %d, want %d", idx, rv, api.INVALID_SW_IF_INDEX)
		}
	}
	if _, err := f.tap.TapDeleteV2(f.ctx, &tapv2.TapDeleteV2{SwIfIndex: interface_types.InterfaceIndex(tun1)}); err != nil {
		t.Fatal(err)
	}
	if !linkGone(t, h, "tunx") {
		t.Error("tunx left after delete")
	}
	// The freed id is picked again.
	if idx, rv := f.create(&tapv2.TapCreateV3{ID: noIndex, TapFlags: tapv2.TAP_API_FLAG_TUN, HostNamespaceSet: true, HostNamespace: ns}); rv != 0 {
		t.Fatalf("recreate: retval %d", rv)
	} else if name := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(idx)})[0].InterfaceName; name != "tun1" {
		t.Errorf("recreated tun is %q, want tun1", name)
	}
}

func taps0Name(t *testing.T, f *tapFixture, idx uint32) string {
	t.Helper()
	taps := f.dumpTaps(idx)
	if len(taps) != 1 {
		t.Fatalf("tap %d: %d details", idx, len(taps))
	}
	return taps[0].HostIfName
}
