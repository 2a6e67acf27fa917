package sim

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/af_packet"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
)

// newVeth creates a down veth pair in the test's (and the simulator's)
// namespace, removed when the test ends, and returns one end's name.
func newVeth(t *testing.T) string {
	t.Helper()
	name := randomName(t, "kvd")
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1450}, PeerName: name + "p"}
	if err := netlink.LinkAdd(link); err != nil {
		t.Fatalf("adding veth %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(link); err != nil {
			t.Errorf("deleting host %s: %v", name, err)
		}
	})
	return name
}

func hostUp(t *testing.T, name string) bool {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Flags&net.FlagUp != 0
}

// TestAfPacket follows af_packet_create_if, af_packet_delete_if and
// af_packet_interface_admin_up_down (src/plugins/af_packet).
func TestAfPacket(t *testing.T) {
	requireNetAdmin(t)
	host := newVeth(t)
	f := newTapFixture(t, Options{})
	afp := af_packet.NewServiceClient(f.conn)
	create := func(req *af_packet.AfPacketCreateV3) (uint32, int32) {
		t.Helper()
		r, err := afp.AfPacketCreateV3(f.ctx, req)
		return uint32(r.SwIfIndex), retval(t, err)
	}
	mac := ethernet_types.MacAddress{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	idx, rv := create(&af_packet.AfPacketCreateV3{Mode: af_packet.AF_PACKET_API_MODE_ETHERNET, HwAddr: mac, HostIfName: host})
	if rv != 0 {
		t.Fatalf("af_packet_create_v3: retval %d", rv)
	}
	if !hostUp(t, host) {
		t.Error("host interface not brought up by af_packet_create_v3")
	}
	d := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(idx)})[0]
	if d.InterfaceName != "host-"+host || d.InterfaceDevType != "af-packet" || d.L2Address != mac ||
		d.Flags != interface_types.IF_STATUS_API_FLAG_LINK_UP {
		t.Errorf("details = %+v", d)
	}

	errs := []struct {
		name    string
		req     af_packet.AfPacketCreateV3
		want    int32
		wantIdx uint32
	}{
		{"duplicate answers the existing index", af_packet.AfPacketCreateV3{Mode: af_packet.AF_PACKET_API_MODE_ETHERNET, HostIfName: host},
			int32(api.IF_ALREADY_EXISTS), idx},
		{"missing host interface", af_packet.AfPacketCreateV3{Mode: af_packet.AF_PACKET_API_MODE_ETHERNET, HostIfName: "kvsim-none0"},
			int32(api.INVALID_INTERFACE), 0},
		{"bad mode", af_packet.AfPacketCreateV3{Mode: 7, HostIfName: host}, int32(api.INVALID_VALUE), noIndex},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			gotIdx, rv := create(&tc.req)
			if rv != tc.want || gotIdx != tc.wantIdx {
				t.Errorf("retval %d index %d, want %d %d", rv, gotIdx, tc.want, tc.wantIdx)
			}
		})
	}

	// Admin state drives the hardware link and the Linux link.
	if _, err := f.ifs.SwInterfaceSetFlags(f.ctx, &interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(idx)}); err != nil {
		t.Fatal(err)
	}
	if hostUp(t, host) {
		t.Error("host interface still up after admin down")
	}
	d = f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(idx)})[0]
	if d.Flags != 0 {
		t.Errorf("flags after admin down = %v, want none", d.Flags)
	}
	if _, err := f.ifs.SwInterfaceSetFlags(f.ctx, &interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(idx),
		Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP}); err != nil {
		t.Fatal(err)
	}
	if !hostUp(t, host) {
		t.Error("host interface down after admin up")
	}

	st, err := afp.AfPacketDump(f.ctx, &af_packet.AfPacketDump{})
	if err != nil {
		t.Fatal(err)
	}
	dump := recvAll(t, st.Recv)
	if len(dump) != 1 || uint32(dump[0].SwIfIndex) != idx || dump[0].HostIfName != host {
		t.Errorf("af_packet_dump = %+v", dump)
	}

	_, err = afp.AfPacketDelete(f.ctx, &af_packet.AfPacketDelete{HostIfName: "kvsim-none0"})
	if rv := retval(t, err); rv != int32(api.SYSCALL_ERROR_1) {
		t.Errorf("delete unknown: retval %d, want %d", rv, api.SYSCALL_ERROR_1)
	}
	if _, err := afp.AfPacketDelete(f.ctx, &af_packet.AfPacketDelete{HostIfName: host}); err != nil {
		t.Fatalf("af_packet_delete: %v", err)
	}
	if got := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(idx)}); len(got) != 0 {
		t.Errorf("interface still listed after delete: %+v", got)
	}
	if !hostUp(t, host) {
		t.Error("af_packet_delete changed the host link")
	}
	// IP mode: no L2 address; random MAC otherwise.
	idx, rv = create(&af_packet.AfPacketCreateV3{Mode: af_packet.AF_PACKET_API_MODE_IP, HostIfName: host})
	if rv != 0 {
		t.Fatalf("IP mode: retval %d", rv)
	}
	if d := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(idx)})[0]; d.L2Address != (ethernet_types.MacAddress{}) {
		t.Errorf("IP mode L2 address = %v, want none", d.L2Address)
	}
}
