package sim

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"
)

type vhostFixture struct {
	*hostFixture
	vhost vhost_user.RPCService
}

func newVhostFixture(t *testing.T) *vhostFixture {
	t.Helper()
	f := newHostFixture(t)
	return &vhostFixture{hostFixture: f, vhost: vhost_user.NewServiceClient(f.conn)}
}

func (f *vhostFixture) create(req *vhost_user.CreateVhostUserIfV2) (uint32, int32) {
	f.t.Helper()
	rep, err := f.vhost.CreateVhostUserIfV2(f.ctx, req)
	rv := retval(f.t, err)
	if rep == nil {
		f.t.Fatal("create_vhost_user_if_v2: no reply")
	}
	return uint32(rep.SwIfIndex), rv
}

func (f *vhostFixture) mustCreate(req *vhost_user.CreateVhostUserIfV2) uint32 {
	f.t.Helper()
	idx, rv := f.create(req)
	if rv != 0 {
		f.t.Fatalf("create_vhost_user_if_v2 %s: retval %d", req.SockFilename, rv)
	}
	return idx
}

func (f *vhostFixture) delete(idx uint32) int32 {
	f.t.Helper()
	_, err := f.vhost.DeleteVhostUserIf(f.ctx, &vhost_user.DeleteVhostUserIf{SwIfIndex: interface_types.InterfaceIndex(idx)})
	return retval(f.t, err)
}

func (f *vhostFixture) dump(idx uint32) []*vhost_user.SwInterfaceVhostUserDetails {
	f.t.Helper()
	st, err := f.vhost.SwInterfaceVhostUserDump(f.ctx, &vhost_user.SwInterfaceVhostUserDump{SwIfIndex: interface_types.InterfaceIndex(idx)})
	if err != nil {
		f.t.Fatal(err)
	}
	return recvAll(f.t, st.Recv)
}

// TestVhostUserCreate follows vl_api_create_vhost_user_if_v2_t_handler and
// vhost_user_create_if step by step.
func TestVhostUserCreate(t *testing.T) {
	f := newVhostFixture(t)
	server := filepath.Join(f.dir, "server.sock")
	regular := filepath.Join(f.dir, "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mac := ethernet_types.MacAddress{0x02, 0, 0, 0, 0, 0x07}

	steps := []struct {
		name    string
		req     vhost_user.CreateVhostUserIfV2
		rv      int32
		sameAs  string // the reply carries this earlier interface's index
		ifName  string
		tag     string
		mac     *ethernet_types.MacAddress
		listens bool
	}{
		{name: "no socket file name", rv: int32(api.INVALID_ARGUMENT)},
		{name: "server", req: vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: server, Tag: "pod-a"},
			ifName: "VirtualEthernet0/0/0", tag: "pod-a", listens: true},
		{name: "socket path in use", req: vhost_user.CreateVhostUserIfV2{SockFilename: server},
			rv: int32(api.IF_ALREADY_EXISTS), sameAs: "VirtualEthernet0/0/0"},
		{name: "server in a missing folder", req: vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: filepath.Join(f.dir, "none", "s.sock")},
			rv: int32(api.SYSCALL_ERROR_2)},
		{name: "client with custom MAC", req: vhost_user.CreateVhostUserIfV2{SockFilename: filepath.Join(f.dir, "client.sock"), UseCustomMac: true, MacAddress: mac},
			ifName: "VirtualEthernet0/0/1", mac: &mac},
		{name: "renumbered", req: vhost_user.CreateVhostUserIfV2{SockFilename: filepath.Join(f.dir, "r.sock"), Renumber: true, CustomDevInstance: 7},
			ifName: "VirtualEthernet0/0/7"},
		// vhost_user_init_server_sock unlinks whatever is at the path.
		{name: "server over a regular file", req: vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: regular},
			ifName: "VirtualEthernet0/0/3", listens: true},
	}
	byName := map[string]uint32{}
	for _, s := range steps {
		idx, rv := f.create(&s.req)
		if rv != s.rv {
			t.Errorf("%s: retval %d, want %d", s.name, rv, s.rv)
			continue
		}
		if rv != 0 {
			want := noIndex
			if s.sameAs != "" {
				want = byName[s.sameAs]
			}
			if idx != want {
				t.Errorf("%s: sw_if_index %d, want %d", s.name, idx, want)
			}
			continue
		}
		byName[s.ifName] = idx
		d := f.iface(idx)
		if d.InterfaceName != s.ifName || d.InterfaceDevType != "vhost-user" || d.Tag != s.tag {
			t.Errorf("%s: sw_interface_details %q (%s) tag %q, want %q (vhost-user) tag %q",
				s.name, d.InterfaceName, d.InterfaceDevType, d.Tag, s.ifName, s.tag)
		}
		if s.mac != nil && d.L2Address != *s.mac {
			t.Errorf("%s: MAC %s, want %s", s.name, d.L2Address, *s.mac)
		}
		if s.mac == nil && (d.L2Address[0] != 0x02 || d.L2Address[1] != 0xfe) {
			t.Errorf("%s: generated MAC %s must start with 02:fe", s.name, d.L2Address)
		}
		if s.req.IsServer && listening(t, "unix", s.req.SockFilename) != s.listens {
			t.Errorf("%s: listening = %v, want %v", s.name, !s.listens, s.listens)
		}
	}
}

// TestVhostUserDump follows send_sw_interface_vhost_user_details for
// interfaces no driver has connected to.
func TestVhostUserDump(t *testing.T) {
	f := newVhostFixture(t)
	server := filepath.Join(f.dir, "server.sock")
	missing := filepath.Join(f.dir, "missing.sock")
	dead := filepath.Join(f.dir, "dead.sock")
	s := f.mustCreate(&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: server})
	c1 := f.mustCreate(&vhost_user.CreateVhostUserIfV2{SockFilename: missing})
	// A socket file nobody listens on: a server that went away.
	d := f.mustCreate(&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: dead})
	if rv := f.delete(d); rv != 0 {
		t.Fatal(rv)
	}
	ln, err := listenHost("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	ln.close() // the file stays, with no listener
	c2 := f.mustCreate(&vhost_user.CreateVhostUserIfV2{SockFilename: dead})

	want := map[uint32]vhost_user.SwInterfaceVhostUserDetails{
		s:  {SwIfIndex: interface_types.InterfaceIndex(s), InterfaceName: "VirtualEthernet0/0/0", IsServer: true, SockFilename: server},
		c1: {SwIfIndex: interface_types.InterfaceIndex(c1), InterfaceName: "VirtualEthernet0/0/1", SockFilename: missing, SockErrno: int32(syscall.ENOENT)},
		// The freed pool slot 2 is reused.
		c2: {SwIfIndex: interface_types.InterfaceIndex(c2), InterfaceName: "VirtualEthernet0/0/2", SockFilename: dead, SockErrno: int32(syscall.ECONNREFUSED)},
	}
	all := f.dump(noIndex)
	if len(all) != len(want) {
		t.Fatalf("dump gave %d details, want %d", len(all), len(want))
	}
	for _, got := range all {
		if w := want[uint32(got.SwIfIndex)]; *got != w {
			t.Errorf("details of %d\n got %+v\nwant %+v", got.SwIfIndex, *got, w)
		}
	}
	for _, c := range []struct {
		name   string
		filter uint32
		n      int
	}{
		{"one interface", c1, 1},
		{"not a vhost-user interface", eth0, 0},
		{"no such interface", 99, 0},
	} {
		if got := f.dump(c.filter); len(got) != c.n {
			t.Errorf("dump %s: %d details, want %d", c.name, len(got), c.n)
		}
	}
}

// TestVhostUserDelete follows vhost_user_delete_if and vhost_user_term_if:
// a server's listener closes and its file is unlinked.
func TestVhostUserDelete(t *testing.T) {
	f := newVhostFixture(t)
	server := filepath.Join(f.dir, "server.sock")
	s := f.mustCreate(&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: server, Renumber: true, CustomDevInstance: 9, Tag: "x"})
	for _, c := range []struct {
		name string
		idx  uint32
		rv   int32
	}{
		{"eth0", eth0, int32(api.INVALID_SW_IF_INDEX)},
		{"no such interface", 99, int32(api.INVALID_SW_IF_INDEX)},
		{"server", s, 0},
		{"again", s, int32(api.INVALID_SW_IF_INDEX)},
	} {
		if rv := f.delete(c.idx); rv != c.rv {
			t.Errorf("delete %s: retval %d, want %d", c.name, rv, c.rv)
		}
	}
	if exists(server) {
		t.Error("deleting a server must unlink its socket file")
	}
	if n := len(f.dump(noIndex)); n != 0 {
		t.Errorf("dump lists %d interfaces after delete", n)
	}
	// The path is free again, and the renumbering went with the interface.
	idx := f.mustCreate(&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: server})
	if name := f.iface(idx).InterfaceName; name != "VirtualEthernet0/0/0" {
		t.Errorf("re-created interface is %q, want VirtualEthernet0/0/0", name)
	}
	if f.iface(idx).Tag != "" {
		t.Error("a deleted interface's tag must not carry over")
	}
	if !listening(t, "unix", server) {
		t.Error("the re-created server must listen")
	}
}

// TestVhostUserModify follows vhost_user_modify_if.
func TestVhostUserModify(t *testing.T) {
	f := newVhostFixture(t)
	a := f.mustCreate(&vhost_user.CreateVhostUserIfV2{SockFilename: filepath.Join(f.dir, "a.sock")})
	f.mustCreate(&vhost_user.CreateVhostUserIfV2{SockFilename: filepath.Join(f.dir, "b.sock")})
	server := filepath.Join(f.dir, "a-server.sock")
	for _, c := range []struct {
		name string
		req  vhost_user.ModifyVhostUserIfV2
		rv   int32
	}{
		{"not vhost-user", vhost_user.ModifyVhostUserIfV2{SwIfIndex: eth0, SockFilename: server}, int32(api.INVALID_SW_IF_INDEX)},
		{"no file name", vhost_user.ModifyVhostUserIfV2{SwIfIndex: interface_types.InterfaceIndex(a)}, int32(api.INVALID_ARGUMENT)},
		{"another interface's path", vhost_user.ModifyVhostUserIfV2{SwIfIndex: interface_types.InterfaceIndex(a), SockFilename: filepath.Join(f.dir, "b.sock")}, int32(api.IF_ALREADY_EXISTS)},
		{"to a server", vhost_user.ModifyVhostUserIfV2{SwIfIndex: interface_types.InterfaceIndex(a), IsServer: true, SockFilename: server, Renumber: true, CustomDevInstance: 4}, 0},
	} {
		_, err := f.vhost.ModifyVhostUserIfV2(f.ctx, &c.req)
		if rv := retval(t, err); rv != c.rv {
			t.Errorf("modify %s: retval %d, want %d", c.name, rv, c.rv)
		}
	}
	got := f.dump(a)
	if len(got) != 1 || !got[0].IsServer || got[0].SockFilename != server || got[0].InterfaceName != "VirtualEthernet0/0/4" {
		t.Fatalf("after modify: %+v", got)
	}
	if !listening(t, "unix", server) {
		t.Error("the modified interface must listen on its new path")
	}
	// The old path is free for another interface.
	f.mustCreate(&vhost_user.CreateVhostUserIfV2{SockFilename: filepath.Join(f.dir, "a.sock")})
}

// TestVhostUserRelease: vhost_user_exit deletes every interface when VPP's
// main loop ends, so server socket files go with the process.
func TestVhostUserRelease(t *testing.T) {
	f := newVhostFixture(t)
	server := filepath.Join(f.dir, "server.sock")
	f.mustCreate(&vhost_user.CreateVhostUserIfV2{IsServer: true, SockFilename: server})
	if err := f.sim.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(server) {
		t.Error("the server socket file must be unlinked at exit")
	}
}

// TestPodInterfaceKinds lists memif and vhost-user interfaces in one
// sw_interface_dump with their device classes.
func TestPodInterfaceKinds(t *testing.T) {
	f := newVhostFixture(t)
	f.mustSocket(1, filepath.Join(f.dir, "m.sock"))
	m, rv := f.createMemif(&memif.MemifCreateV2{SocketID: 1})
	if rv != 0 {
		t.Fatalf("memif_create_v2: retval %d", rv)
	}
	v := f.mustCreate(&vhost_user.CreateVhostUserIfV2{SockFilename: filepath.Join(f.dir, "v.sock")})
	f.setUp(m, true)
	f.setUp(v, true)
	got := map[string]string{}
	for _, d := range f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(noIndex)}) {
		got[d.InterfaceName] = d.InterfaceDevType
		// Nothing connects in the simulator: admin up, link down.
		if (uint32(d.SwIfIndex) == m || uint32(d.SwIfIndex) == v) &&
			d.Flags != interface_types.IF_STATUS_API_FLAG_ADMIN_UP {
			t.Errorf("%s flags %v, want admin up only", d.InterfaceName, d.Flags)
		}
	}
	want := map[string]string{"local0": "local", "eth0": "dpdk", "memif1/0": "memif", "VirtualEthernet0/0/0": "vhost-user"}
	for name, kind := range want {
		if got[name] != kind {
			t.Errorf("%s: device type %q, want %q", name, got[name], kind)
		}
	}
}
