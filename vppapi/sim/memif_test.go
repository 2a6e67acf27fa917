package sim

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	fibapi "go.fd.io/govpp/binapi/fib"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/memif"
)

// hostFixture is a simulator with eth0 (index 1) whose runtime directory
// is the folder of its API socket, a fresh temporary one.
type hostFixture struct {
	*fixture
	dir   string
	memif memif.RPCService
}

func newHostFixture(t *testing.T) *hostFixture {
	t.Helper()
	s, conn, path := startSim(t, Options{Interfaces: []InterfaceSpec{{Name: "eth0"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, sim: s, conn: conn,
		ifs: interfaces.NewServiceClient(conn), ip: ip.NewServiceClient(conn), fib: fibapi.NewServiceClient(conn)}
	return &hostFixture{fixture: f, dir: filepath.Dir(path), memif: memif.NewServiceClient(conn)}
}

func (f *hostFixture) socket(add bool, id uint32, filename string) (uint32, int32) {
	f.t.Helper()
	rep, err := f.memif.MemifSocketFilenameAddDelV2(f.ctx, &memif.MemifSocketFilenameAddDelV2{IsAdd: add, SocketID: id, SocketFilename: filename})
	rv := retval(f.t, err)
	if rep == nil {
		f.t.Fatalf("memif_socket_filename_add_del_v2 %d: no reply", id)
	}
	return rep.SocketID, rv
}

func (f *hostFixture) mustSocket(id uint32, filename string) {
	f.t.Helper()
	if _, rv := f.socket(true, id, filename); rv != 0 {
		f.t.Fatalf("adding memif socket %d %s: retval %d", id, filename, rv)
	}
}

func (f *hostFixture) createMemif(req *memif.MemifCreateV2) (uint32, int32) {
	f.t.Helper()
	rep, err := f.memif.MemifCreateV2(f.ctx, req)
	rv := retval(f.t, err)
	if rep == nil {
		f.t.Fatal("memif_create_v2: no reply")
	}
	return uint32(rep.SwIfIndex), rv
}

func (f *hostFixture) deleteMemif(idx uint32) int32 {
	f.t.Helper()
	_, err := f.memif.MemifDelete(f.ctx, &memif.MemifDelete{SwIfIndex: interface_types.InterfaceIndex(idx)})
	return retval(f.t, err)
}

func (f *hostFixture) memifs() []*memif.MemifDetails {
	f.t.Helper()
	st, err := f.memif.MemifDump(f.ctx, &memif.MemifDump{})
	if err != nil {
		f.t.Fatal(err)
	}
	return recvAll(f.t, st.Recv)
}

// listening reports whether a connection to a unix socket is accepted; a
// refused one means the file has no listener.
func listening(t *testing.T, network, path string) bool {
	t.Helper()
	c, err := net.DialTimeout(network, path, 5*time.Second)
	if err == nil {
		_ = c.Close()
		return true
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("dial %s %s: %v", network, path, err)
	}
	return false
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestMemifSocketFilenames follows vl_api_memif_socket_filename_add_del_v2_t_handler
// and memif_socket_filename_add_del step by step.
func TestMemifSocketFilenames(t *testing.T) {
	f := newHostFixture(t)
	abs := filepath.Join(f.dir, "abs.sock")
	if err := os.WriteFile(filepath.Join(f.dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		add      bool
		id       uint32
		filename string
		rv       int32
		replyID  uint32
	}{
		{"id 0 is refused by the handler", true, 0, abs, int32(api.INVALID_ARGUMENT), 0},
		{"the default socket cannot be deleted", false, 0, "", int32(api.INVALID_ARGUMENT), 0},
		{"delete needs an id", false, noIndex, "", int32(api.INVALID_ARGUMENT), noIndex},
		{"empty file name", true, 1, "", int32(api.INVALID_ARGUMENT), 1},
		{"absolute path", true, 1, abs, 0, 1},
		{"identical add is accepted", true, 1, abs, 0, 1},
		{"another file for a used id", true, 1, abs + "2", int32(api.ENTRY_ALREADY_EXISTS), 1},
		{"relative path creates its folders", true, 2, "sub/dir/m.sock", 0, 2},
		// vlib_unix_recursive_mkdir ignores EEXIST even for a file, but
		// cannot create a folder below one.
		{"folder below a file", true, 3, "file/sub/m.sock", int32(api.SYSCALL_ERROR_1), 3},
		{"file next to a file named like a folder", true, 4, "file/m.sock", 0, 4},
		// memif_get_unused_socket_id's first draw in a fresh VPP: random_u32 from seed 0.
		{"~0 picks an unused id", true, noIndex, abs, 0, 1013904223},
		{"unknown id", false, 9, "", int32(api.INVALID_ARGUMENT), 9},
		{"delete", false, 4, "", 0, 4},
		{"deleted id", false, 4, "", int32(api.INVALID_ARGUMENT), 4},
	}
	for _, s := range steps {
		id, rv := f.socket(s.add, s.id, s.filename)
		if rv != s.rv || id != s.replyID {
			t.Errorf("%s: retval %d socket_id %d, want %d %d", s.name, rv, id, s.rv, s.replyID)
		}
	}
	if fi, err := os.Stat(filepath.Join(f.dir, "sub", "dir")); err != nil || !fi.IsDir() {
		t.Errorf("the folder of a relative socket must exist after the add: %v", err)
	}

	st, err := f.memif.MemifSocketFilenameDump(f.ctx, &memif.MemifSocketFilenameDump{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint32]string{}
	for _, d := range recvAll(t, st.Recv) {
		got[d.SocketID] = d.SocketFilename
	}
	want := map[uint32]string{
		0: filepath.Join(f.dir, "memif.sock"), 1: abs, 2: filepath.Join(f.dir, "sub/dir/m.sock"), 1013904223: abs,
	}
	if len(got) != len(want) {
		t.Errorf("socket table %v, want %v", got, want)
	}
	for id, name := range want {
		if got[id] != name {
			t.Errorf("socket %d = %q, want %q", id, got[id], name)
		}
	}
}

// TestMemifCreate follows vl_api_memif_create_v2_t_handler and memif_create_if.
func TestMemifCreate(t *testing.T) {
	f := newHostFixture(t)
	master := filepath.Join(f.dir, "master.sock")
	f.mustSocket(1, master)
	f.mustSocket(2, filepath.Join(f.dir, "slave.sock"))
	f.mustSocket(3, filepath.Join(f.dir, "punt.sock"))
	blocked := filepath.Join(f.dir, "regular-file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.mustSocket(4, blocked)
	mac := ethernet_types.MacAddress{0x02, 0x00, 0x00, 0x00, 0x00, 0x42}

	steps := []struct {
		name   string
		req    memif.MemifCreateV2
		rv     int32
		ifName string // "" when nothing is created
	}{
		{"master", memif.MemifCreateV2{SocketID: 1, HwAddr: mac}, 0, "memif1/0"},
		{"same id on the socket", memif.MemifCreateV2{SocketID: 1}, int32(api.SUBIF_ALREADY_EXISTS), ""},
		{"slave on a master socket", memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_SLAVE, SocketID: 1, ID: 1}, int32(api.SUBIF_ALREADY_EXISTS), ""},
		{"second master", memif.MemifCreateV2{SocketID: 1, ID: 1, Mode: memif.MEMIF_MODE_API_IP}, 0, "memif1/1"},
		{"unknown socket", memif.MemifCreateV2{SocketID: 7}, int32(api.INVALID_ARGUMENT), ""},
		{"ring size not a power of 2", memif.MemifCreateV2{SocketID: 1, ID: 2, RingSize: 1000}, int32(api.INVALID_ARGUMENT), ""},
		{"slave", memif.MemifCreateV2{Role: memif.MEMIF_ROLE_API_SLAVE, SocketID: 2, ID: 5, RingSize: 2048, BufferSize: 4096}, 0, "memif2/5"},
		{"punt/inject is unsupported", memif.MemifCreateV2{SocketID: 3, Mode: memif.MEMIF_MODE_API_PUNT_INJECT}, int32(api.SYSCALL_ERROR_2), ""},
		{"listener on a regular file", memif.MemifCreateV2{SocketID: 4}, int32(api.SYSCALL_ERROR_4), ""},
	}
	created := map[string]uint32{}
	for _, s := range steps {
		idx, rv := f.createMemif(&s.req)
		if rv != s.rv {
			t.Errorf("%s: retval %d, want %d", s.name, rv, s.rv)
			continue
		}
		if s.ifName == "" {
			continue
		}
		if got := f.iface(idx); got.InterfaceName != s.ifName || got.InterfaceDevType != "memif" {
			t.Errorf("%s: interface %d is %q (%s), want %q (memif)", s.name, idx, got.InterfaceName, got.InterfaceDevType, s.ifName)
		}
		created[s.ifName] = idx
	}
	// The listener failure unwound a registered interface: no memif3 or memif4 is left.
	for _, d := range f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(noIndex)}) {
		if _, ok := created[d.InterfaceName]; !ok && d.InterfaceName != "local0" && d.InterfaceName != "eth0" {
			t.Errorf("unexpected interface %q after failed creates", d.InterfaceName)
		}
	}

	if !listening(t, "unixpacket", master) {
		t.Error("a master interface must listen on its socket")
	}
	if fi, err := os.Stat(master); err != nil || fi.Mode().Perm() != 0o775 {
		t.Errorf("master socket file: %v, mode %v, want 0775", err, fi.Mode().Perm())
	}
	if exists(filepath.Join(f.dir, "slave.sock")) {
		t.Error("a slave must not create its socket file")
	}
	if _, rv := f.socket(false, 1, ""); rv != int32(api.UNEXPECTED_INTF_STATE) {
		t.Errorf("deleting a socket in use: retval %d, want %d", rv, api.UNEXPECTED_INTF_STATE)
	}

	f.setUp(created["memif1/0"], true)
	dump := map[string]*memif.MemifDetails{}
	for _, d := range f.memifs() {
		dump[d.IfName] = d
	}
	if len(dump) != 3 {
		t.Fatalf("memif_dump gave %d interfaces, want 3", len(dump))
	}
	// send_memif_details reads the negotiated ring and buffer sizes: 1 << 0
	// and 0 before any peer connects. zero_copy is only set on slaves.
	want := map[string]memif.MemifDetails{
		"memif1/0": {SwIfIndex: interface_types.InterfaceIndex(created["memif1/0"]), HwAddr: mac, SocketID: 1, RingSize: 1,
			Role: memif.MEMIF_ROLE_API_MASTER, Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP, IfName: "memif1/0"},
		"memif1/1": {SwIfIndex: interface_types.InterfaceIndex(created["memif1/1"]), ID: 1, SocketID: 1, RingSize: 1,
			Mode: memif.MEMIF_MODE_API_IP, IfName: "memif1/1"},
		"memif2/5": {SwIfIndex: interface_types.InterfaceIndex(created["memif2/5"]), ID: 5, SocketID: 2, RingSize: 1,
			Role: memif.MEMIF_ROLE_API_SLAVE, ZeroCopy: true, IfName: "memif2/5"},
	}
	for name, w := range want {
		d := dump[name]
		if d == nil {
			t.Errorf("%s missing from memif_dump", name)
			continue
		}
		if name == "memif2/5" {
			if d.HwAddr[0] != 0x02 || d.HwAddr[1] != 0xfe {
				t.Errorf("%s: generated MAC %s must start with 02:fe", name, d.HwAddr)
			}
			w.HwAddr = d.HwAddr
		}
		if *d != w {
			t.Errorf("%s: memif_dump\n got %+v\nwant %+v", name, *d, w)
		}
	}
}

// TestMemifDeleteClosesListener follows memif_delete_if: the listener
// closes with the socket's last interface and the file stays.
func TestMemifDeleteClosesListener(t *testing.T) {
	f := newHostFixture(t)
	path := filepath.Join(f.dir, "m.sock")
	f.mustSocket(1, path)
	a, _ := f.createMemif(&memif.MemifCreateV2{SocketID: 1, ID: 1})
	b, _ := f.createMemif(&memif.MemifCreateV2{SocketID: 1, ID: 2})

	for _, c := range []struct {
		name string
		idx  uint32
		rv   int32
	}{
		{"local0", 0, int32(api.INVALID_SW_IF_INDEX)},
		{"eth0", eth0, int32(api.INVALID_SW_IF_INDEX)},
		{"no such interface", 99, int32(api.INVALID_SW_IF_INDEX)},
	} {
		if rv := f.deleteMemif(c.idx); rv != c.rv {
			t.Errorf("memif_delete %s: retval %d, want %d", c.name, rv, c.rv)
		}
	}

	if rv := f.deleteMemif(a); rv != 0 {
		t.Fatalf("memif_delete: retval %d", rv)
	}
	if !listening(t, "unixpacket", path) {
		t.Error("the listener must stay while an interface uses the socket")
	}
	if rv := f.deleteMemif(b); rv != 0 {
		t.Fatalf("memif_delete: retval %d", rv)
	}
	if listening(t, "unixpacket", path) {
		t.Error("the listener must close with the last interface")
	}
	if !exists(path) {
		t.Error("VPP closes the listener but leaves the socket file")
	}
	if n := len(f.memifs()); n != 0 {
		t.Errorf("memif_dump lists %d interfaces after deleting all", n)
	}
	// clib_socket_init replaces a socket file nobody listens on.
	if _, rv := f.createMemif(&memif.MemifCreateV2{SocketID: 1, ID: 1}); rv != 0 {
		t.Fatalf("master on a stale socket file: retval %d", rv)
	}
	if !listening(t, "unixpacket", path) {
		t.Error("a new master must listen again on the stale file's path")
	}
	if _, rv := f.socket(false, 1, ""); rv != int32(api.UNEXPECTED_INTF_STATE) {
		t.Errorf("deleting a socket in use: retval %d", rv)
	}
}

// TestMemifSocketKinds covers the socket names clib_socket_init accepts.
func TestMemifSocketKinds(t *testing.T) {
	f := newHostFixture(t)
	shared := filepath.Join(f.dir, "shared.sock")
	abstract := "kube-vpp-test-" + filepath.Base(f.dir)
	f.mustSocket(1, shared)
	f.mustSocket(2, shared)
	f.mustSocket(3, "abstract:"+abstract)
	f.mustSocket(4, "@at.sock")

	steps := []struct {
		name   string
		socket uint32
		rv     int32
	}{
		{"default socket", 0, 0},
		{"first socket id on a file", 1, 0},
		{"second socket id on the same file: active listener", 2, int32(api.SYSCALL_ERROR_4)},
		{"abstract socket", 3, 0},
		// "@" is no prefix in 25.10: the name is the relative file <rt>/@at.sock,
		// and '@' is not a character clib_socket_init parses in a path.
		{"'@' file name", 4, int32(api.SYSCALL_ERROR_4)},
	}
	for _, s := range steps {
		if _, rv := f.createMemif(&memif.MemifCreateV2{SocketID: s.socket}); rv != s.rv {
			t.Errorf("%s: retval %d, want %d", s.name, rv, s.rv)
		}
	}
	for _, c := range []struct {
		path string
		want bool
	}{
		{filepath.Join(f.dir, "memif.sock"), true},
		{shared, true},
		// The abstract name's length counts its NUL, as clib_socket_init binds it.
		{"@" + abstract + "\x00", true},
		{"@" + abstract, false},
		{filepath.Join(f.dir, "@at.sock"), false},
	} {
		if got := listening(t, "unixpacket", c.path); got != c.want {
			t.Errorf("listening on %q = %v, want %v", c.path, got, c.want)
		}
	}
}

// TestMemifReleaseKeepsFile: a dying VPP's listeners close with the
// process and, with no exit hook in the memif plugin, the files stay.
func TestMemifReleaseKeepsFile(t *testing.T) {
	f := newHostFixture(t)
	path := filepath.Join(f.dir, "m.sock")
	f.mustSocket(1, path)
	if _, rv := f.createMemif(&memif.MemifCreateV2{SocketID: 1}); rv != 0 {
		t.Fatalf("memif_create_v2: retval %d", rv)
	}
	if err := f.sim.Close(); err != nil {
		t.Fatal(err)
	}
	if listening(t, "unixpacket", path) {
		t.Error("the listener must close with the simulator")
	}
	if !exists(path) {
		t.Error("the socket file must stay behind")
	}
}
