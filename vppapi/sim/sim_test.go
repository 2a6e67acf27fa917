package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/af_packet"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/tapv2"
	"go.fd.io/govpp/binapi/vhost_user"
)

// noHostFixture is a simulator with Options.NoHost and eth0 (index 1).
type noHostFixture struct {
	*vhostFixture
	tap tapv2.RPCService
	afp af_packet.RPCService
}

func newNoHostFixture(t *testing.T) *noHostFixture {
	t.Helper()
	s, conn, path := startSim(t, Options{NoHost: true, Interfaces: []InterfaceSpec{{Name: "eth0"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, sim: s, conn: conn, ifs: interfaces.NewServiceClient(conn), ip: ip.NewServiceClient(conn)}
	hf := &hostFixture{fixture: f, dir: filepath.Dir(path), memif: memif.NewServiceClient(conn)}
	return &noHostFixture{
		vhostFixture: &vhostFixture{hostFixture: hf, vhost: vhost_user.NewServiceClient(conn)},
		tap:          tapv2.NewServiceClient(conn),
		afp:          af_packet.NewServiceClient(conn),
	}
}

// hostLinkExists reports whether this namespace has a Linux interface name.
func hostLinkExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		t.Fatalf("looking up %s: %v", name, err)
	}
	return err == nil
}

// TestNoHostTap: tap_create_v3 answers as tap_create_if does (ids, names,
// ring checks, the host name the kernel would give) with no namespace
// opened and no device made; tap_delete_v2 removes it.
func TestNoHostTap(t *testing.T) {
	f := newNoHostFixture(t)
	ns := randomName(t, "kvnh-") // exists nowhere: a host check would fail
	long := randomName(t, "kvnh") + "-and-more"
	tests := []struct {
		name     string
		req      tapv2.TapCreateV3
		rv       api.VPPApiError
		idx      uint32 // sw_if_index: 0 local0, 1 eth0, then in creation order
		devName  string
		hostName string
	}{
		{"tun named in a pod namespace", tapv2.TapCreateV3{ID: noIndex, TapFlags: tapv2.TAP_API_FLAG_TUN, HostIfNameSet: true, HostIfName: "eth0",
			HostNamespaceSet: true, HostNamespace: ns, HostMtuSet: true, HostMtuSize: 1400}, 0, 2, "tun0", "eth0"},
		{"tap named by the kernel", tapv2.TapCreateV3{ID: noIndex, UseRandomMac: true}, 0, 3, "tap1", "tap0"},
		{"next kernel name", tapv2.TapCreateV3{ID: noIndex, UseRandomMac: true}, 0, 4, "tap2", "tap1"},
		{"name cut to IFNAMSIZ-1", tapv2.TapCreateV3{ID: noIndex, HostIfNameSet: true, HostIfName: long}, 0, 5, "tap3", long[:15]},
		{"id in use", tapv2.TapCreateV3{ID: 1}, api.INVALID_INTERFACE, 0, "", ""},
		{"ring size not a power of two", tapv2.TapCreateV3{ID: noIndex, RxRingSz: 100}, api.INIT_FAILED, 0, "", ""},
		{"attach without a host name", tapv2.TapCreateV3{ID: noIndex, TapFlags: tapv2.TAP_API_FLAG_ATTACH}, api.NO_MATCHING_INTERFACE, 0, "", ""},
	}
	var made []uint32
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := f.tap.TapCreateV3(f.ctx, &tc.req)
			if rv := retval(t, err); rv != int32(tc.rv) {
				t.Fatalf("retval %d, want %d", rv, tc.rv)
			}
			if tc.rv != 0 {
				return
			}
			idx := uint32(r.SwIfIndex)
			made = append(made, idx)
			if idx != tc.idx {
				t.Errorf("sw_if_index %d, want %d", idx, tc.idx)
			}
			d := (&tapFixture{fixture: f.fixture, tap: f.tap}).dumpTaps(idx)
			if len(d) != 1 || d[0].DevName != tc.devName || d[0].HostIfName != tc.hostName || d[0].HostNamespace != tc.req.HostNamespace {
				t.Fatalf("dump %+v, want %s with host name %s in %q", d, tc.devName, tc.hostName, tc.req.HostNamespace)
			}
		})
	}
	if hostLinkExists(t, long[:15]) {
		t.Errorf("a Linux interface %s appeared", long[:15])
	}
	for _, idx := range made {
		if _, err := f.tap.TapDeleteV2(f.ctx, &tapv2.TapDeleteV2{SwIfIndex: interface_types.InterfaceIndex(idx)}); err != nil {
			t.Errorf("tap_delete_v2 %d: %v", idx, err)
		}
	}
	if d := (&tapFixture{fixture: f.fixture, tap: f.tap}).dumpTaps(noIndex); len(d) != 0 {
		t.Errorf("taps after deleting all: %+v", d)
	}
	if exists("/var/run/netns/" + ns) {
		t.Errorf("namespace %s appeared", ns)
	}
}

// TestNoHostAfPacket: af_packet_create_v3 accepts a host interface that
// does not exist, and the link still follows the admin state
// (af_packet_interface_admin_up_down); duplicates and deletes answer as
// af_packet_create_if and af_packet_delete_if do.
func TestNoHostAfPacket(t *testing.T) {
	f := newNoHostFixture(t)
	host := randomName(t, "kvnh")
	create := func() (uint32, int32) {
		t.Helper()
		r, err := f.afp.AfPacketCreateV3(f.ctx, &af_packet.AfPacketCreateV3{Mode: af_packet.AF_PACKET_API_MODE_ETHERNET, UseRandomHwAddr: true, HostIfName: host})
		return uint32(r.SwIfIndex), retval(t, err)
	}
	idx, rv := create()
	if rv != 0 || idx != 2 {
		t.Fatalf("af_packet_create_v3 %s: sw_if_index %d retval %d, want 2 and 0", host, idx, rv)
	}
	if name := f.iface(idx).InterfaceName; name != "host-"+host {
		t.Errorf("name %q, want host-%s", name, host)
	}
	if again, rv := create(); rv != int32(api.IF_ALREADY_EXISTS) || again != idx {
		t.Errorf("duplicate: sw_if_index %d retval %d, want %d and IF_ALREADY_EXISTS", again, rv, idx)
	}
	for _, up := range []bool{true, false} {
		f.setUp(idx, up)
		link := f.iface(idx).Flags&interface_types.IF_STATUS_API_FLAG_LINK_UP != 0
		if link != up {
			t.Errorf("admin up=%t: link up=%t, want it to follow", up, link)
		}
	}
	if hostLinkExists(t, host) {
		t.Errorf("a Linux interface %s appeared", host)
	}
	if _, err := f.afp.AfPacketDelete(f.ctx, &af_packet.AfPacketDelete{HostIfName: host}); err != nil {
		t.Fatalf("af_packet_delete: %v", err)
	}
	_, err := f.afp.AfPacketDelete(f.ctx, &af_packet.AfPacketDelete{HostIfName: host})
	if rv := retval(t, err); rv != int32(api.SYSCALL_ERROR_1) {
		t.Errorf("deleting again: retval %d, want SYSCALL_ERROR_1", rv)
	}
}

// TestNoHostMemif: socket names are checked as memif_socket_filename_add_del
// and clib_socket_init check them, but no folder, file or listener is made,
// and a file already at the path (a host check) does not matter.
func TestNoHostMemif(t *testing.T) {
	f := newNoHostFixture(t)
	taken := filepath.Join(f.dir, "regular-file")
	if err := os.WriteFile(taken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		filename string
		want     string // the socket file as dumped
		createRV api.VPPApiError
	}{
		{"relative name in a new folder", "nh/sub/memif.sock", filepath.Join(f.dir, "nh/sub/memif.sock"), 0},
		{"absolute name", filepath.Join(f.dir, "abs.sock"), filepath.Join(f.dir, "abs.sock"), 0},
		{"a regular file at the path", taken, taken, 0},
		{"abstract name", "abstract:kvnh,netns_name=kvnh-none", "abstract:kvnh,netns_name=kvnh-none", 0},
		{"path too long for sun_path", "/" + strings.Repeat("x", 120), ("/" + strings.Repeat("x", 120))[:107], api.SYSCALL_ERROR_4},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := uint32(10 + i)
			f.mustSocket(id, tc.filename)
			idx, rv := f.createMemif(&memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_MASTER, Mode: memif.MEMIF_MODE_API_ETHERNET, SocketID: id})
			if rv != int32(tc.createRV) {
				t.Fatalf("memif_create_v2: retval %d, want %d", rv, tc.createRV)
			}
			var dumped string
			for _, d := range recvSockets(t, f) {
				if d.SocketID == id {
					dumped = d.SocketFilename
				}
			}
			if dumped != tc.want {
				t.Errorf("socket %d dumped as %q, want %q", id, dumped, tc.want)
			}
			if tc.createRV == 0 {
				if name, ok := strings.CutPrefix(tc.filename, "abstract:"); ok {
					name, _, _ = strings.Cut(name, ",")
					if listening(t, "unixpacket", "@"+name+"\x00") {
						t.Errorf("abstract socket %s is listened on", name)
					}
				} else if tc.want != taken && exists(tc.want) {
					t.Errorf("%s was made on the host", tc.want)
				}
				if rv := f.deleteMemif(idx); rv != 0 {
					t.Errorf("memif_delete: retval %d", rv)
				}
			}
			if _, rv := f.socket(false, id, ""); rv != 0 {
				t.Errorf("deleting socket %d: retval %d", id, rv)
			}
		})
	}
	for _, p := range []string{filepath.Join(f.dir, "nh"), filepath.Join(f.dir, "abs.sock")} {
		if exists(p) {
			t.Errorf("%s was made on the host", p)
		}
	}
	if fi, err := os.Stat(taken); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the regular file at %s was touched: %v", taken, err)
	}
}

func recvSockets(t *testing.T, f *noHostFixture) []*memif.MemifSocketFilenameDetails {
	t.Helper()
	st, err := f.memif.MemifSocketFilenameDump(f.ctx, &memif.MemifSocketFilenameDump{})
	if err != nil {
		t.Fatal(err)
	}
	return recvAll(t, st.Recv)
}

// TestNoHostVhostUser: a server interface reports is_server without a
// socket on the host, a client reports sock_errno 0 (as
// vhost_user_vui_init leaves it), and the socket path's file, here a
// regular one, is neither unlinked nor replaced.
func TestNoHostVhostUser(t *testing.T) {
	f := newNoHostFixture(t)
	server := filepath.Join(f.dir, "server.sock")
	if err := os.WriteFile(server, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(f.dir, "missing", "client.sock")
	s := f.mustCreate(&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: server, Tag: "srv"})
	c := f.mustCreate(&vhost_user.CreateVhostUserIfV2{SockFilename: client})
	if dup, rv := f.create(&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: server}); rv != int32(api.IF_ALREADY_EXISTS) || dup != s {
		t.Errorf("same socket again: sw_if_index %d retval %d, want %d and IF_ALREADY_EXISTS", dup, rv, s)
	}
	want := map[uint32]vhost_user.SwInterfaceVhostUserDetails{
		s: {SwIfIndex: interface_types.InterfaceIndex(s), InterfaceName: "VirtualEthernet0/0/0", IsServer: true, SockFilename: server},
		c: {SwIfIndex: interface_types.InterfaceIndex(c), InterfaceName: "VirtualEthernet0/0/1", SockFilename: client},
	}
	for _, d := range f.dump(noIndex) {
		if w, ok := want[uint32(d.SwIfIndex)]; !ok || *d != w {
			t.Errorf("dump %+v, want %+v", d, w)
		}
	}
	if tag := f.iface(s).Tag; tag != "srv" {
		t.Errorf("tag %q, want srv", tag)
	}
	for _, idx := range []uint32{s, c} {
		if rv := f.delete(idx); rv != 0 {
			t.Errorf("delete_vhost_user_if %d: retval %d", idx, rv)
		}
	}
	if b, err := os.ReadFile(server); err != nil || string(b) != "kept" {
		t.Errorf("the file at the server's path was touched: %q, %v", b, err)
	}
	if exists(filepath.Dir(client)) {
		t.Errorf("%s was made on the host", filepath.Dir(client))
	}
}
