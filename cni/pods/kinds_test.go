package pods

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"go.fd.io/govpp/binapi/memif"
	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vppapi"
)

// memifSocketFiles lists the socket files VPP has registered
// (memif_socket_filename_dump).
func memifSocketFiles(t *testing.T, e *testEnv) []string {
	t.Helper()
	stream, err := memif.NewServiceClient(e.vpp.Client).MemifSocketFilenameDump(context.Background(), &memif.MemifSocketFilenameDump{})
	if err != nil {
		t.Fatal(err)
	}
	socks, err := vppapi.Collect(stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range socks {
		out = append(out, s.SocketFilename)
	}
	return out
}

// listening reports whether something accepts connections on a unix socket.
func listening(network, path string) bool {
	c, err := net.Dial(network, path)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func podLinks(t *testing.T, e *testEnv) map[string]interfaces.PodLink {
	t.Helper()
	links, err := e.ifaces.PodLinks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// hasEth0 reports whether the pod's namespace has an eth0.
func hasEth0(netnsPath string) bool {
	return exec.Command("ip", "-n", filepath.Base(netnsPath), "link", "show", "eth0").Run() == nil
}

func (e *testEnv) annotation(namespace, pod, key string) string {
	e.cluster.mu.Lock()
	defer e.cluster.mu.Unlock()
	return e.cluster.annotated[namespace+"/"+pod][key]
}

// socketInterface is the result's interface with a socket path, -1 if none.
func socketInterface(res *types100.Result) int {
	for i, in := range res.Interfaces {
		if in.SocketPath != "" {
			return i
		}
	}
	return -1
}

// hostRouteVia checks the /32 of addr points at sw_if_index.
func hostRouteVia(t *testing.T, e *testEnv, addr string, swIfIndex uint32) {
	t.Helper()
	r, ok := e.m.fib.Programmed(0, netip.PrefixFrom(netip.MustParseAddr(addr), 32))
	if !ok || len(r.Paths) != 1 || r.Paths[0].SwIfIndex != swIfIndex {
		t.Errorf("host route %s/32 = %+v (found %v), want one path via sw_if_index %d", addr, r, ok, swIfIndex)
	}
}

func (e *testEnv) serve(t *testing.T, cmd, id, netns, namespace, pod string) {
	t.Helper()
	if _, err := e.m.Serve(context.Background(), request(cmd, id, netns, namespace, pod)); err != nil {
		t.Fatalf("%s %s/%s: %v", cmd, namespace, pod, err)
	}
}

// TestMemifPod: a memif pod keeps a tap or veth (the node's default) for
// its ordinary traffic, which carries the IP, and gets a master memif on
// its own socket. VPP's memif_create_if starts listening (SOCK_SEQPACKET)
// with the socket's first master interface; memif_delete_if closes the
// listener when the socket's ref_cnt drops to 0, after which
// memif_socket_filename_add_del may remove the registration.
func TestMemifPod(t *testing.T) {
	tests := []struct {
		kind      Kind
		vppKind   interfaces.PodKind
		wantIfces int // the veth's host end, eth0, the memif
	}{
		{KindTap, interfaces.PodTap, 2},
		{KindVeth, interfaces.PodAfPacket, 3},
	}
	for i, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			e := newTestEnv(t, tt.kind)
			e.cluster.addPod("default", "dpdk", map[string]string{AnnotationInterface: "memif"})
			ns := newNetns(t)
			id := containerID(700 + i)
			sock := filepath.Join(e.cfg.MemifDir, "default", "dpdk", "memif.sock")

			res, err := e.add(id, ns, "default", "dpdk")
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.244.0.2/32" {
				t.Fatalf("IPs = %v, want 10.244.0.2/32", res.IPs)
			}
			if len(res.Interfaces) != tt.wantIfces {
				t.Errorf("result has %d interfaces, want %d: %v", len(res.Interfaces), tt.wantIfces, res.Interfaces)
			}
			if pod := res.Interfaces[*res.IPs[0].Interface]; pod.Name != "eth0" || pod.Sandbox != ns {
				t.Errorf("the IP is on %+v, want eth0 in %s", pod, ns)
			}
			if j := socketInterface(res); j < 0 || res.Interfaces[j].SocketPath != sock {
				t.Errorf("result interfaces %v: want one with socketPath %s", res.Interfaces, sock)
			}
			if got := e.annotation("default", "dpdk", AnnotationMemifSocket); got != sock {
				t.Errorf("pod annotation %s = %q, want %q", AnnotationMemifSocket, got, sock)
			}
			if !listening("unixpacket", sock) {
				t.Errorf("VPP (memif master) does not listen on %s", sock)
			}
			if !hasEth0(ns) {
				t.Error("no eth0 in the pod: a memif pod keeps its Linux interface")
			}

			links := podLinks(t, e)
			primary, ok := links[podTag(id, "default", "dpdk")]
			if !ok || primary.Kind != tt.vppKind || !primary.Up {
				t.Errorf("primary interface %+v (found %v), want %s and up", primary, ok, tt.vppKind)
			}
			mem, ok := links[memifTag(id, "default", "dpdk")]
			if !ok || mem.Kind != interfaces.PodMemif || mem.SocketPath != sock || !mem.Up {
				t.Errorf("memif %+v (found %v), want a memif on %s and up", mem, ok, sock)
			}
			if len(links) != 2 {
				t.Errorf("VPP pod interfaces = %v, want the %s and the memif", links, tt.vppKind)
			}
			hostRouteVia(t, e, "10.244.0.2", primary.SwIfIndex)
			e.serve(t, "CHECK", id, ns, "default", "dpdk")

			e.serve(t, "DEL", id, ns, "default", "dpdk")
			if links := podLinks(t, e); len(links) != 0 {
				t.Errorf("VPP pod interfaces after DEL: %v", links)
			}
			if files := memifSocketFiles(t, e); slices.Contains(files, sock) {
				t.Errorf("memif socket %s still registered after DEL: %v", sock, files)
			}
			if listening("unixpacket", sock) {
				t.Errorf("something still listens on %s after DEL", sock)
			}
			if len(e.m.ipam.Records()) != 0 {
				t.Errorf("allocations after DEL: %v", e.m.ipam.Records())
			}
		})
	}
}

// TestMemifOnlyPod: the memif carries the IP; the pod has no Linux
// interface and VPP's host route points at the memif.
func TestMemifOnlyPod(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	e.cluster.addPod("default", "dpdk", map[string]string{AnnotationInterface: "memif", AnnotationMemifOnly: "true"})
	ns := newNetns(t)
	id := containerID(710)
	sock := filepath.Join(e.cfg.MemifDir, "default", "dpdk", "memif.sock")

	res, err := e.add(id, ns, "default", "dpdk")
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if hasEth0(ns) {
		t.Error("a memif-only pod got eth0 in its namespace")
	}
	if len(res.Interfaces) != 1 || res.Interfaces[0].SocketPath != sock || len(res.IPs) != 1 || *res.IPs[0].Interface != 0 {
		t.Errorf("result interfaces %v, IPs %v: want only the memif on %s, carrying the IP", res.Interfaces, res.IPs, sock)
	}
	links := podLinks(t, e)
	mem, ok := links[podTag(id, "default", "dpdk")]
	if len(links) != 1 || !ok || mem.Kind != interfaces.PodMemif || mem.SocketPath != sock {
		t.Fatalf("VPP pod interfaces = %v, want only a memif on %s tagged as the pod's", links, sock)
	}
	hostRouteVia(t, e, "10.244.0.2", mem.SwIfIndex)
	if !listening("unixpacket", sock) {
		t.Errorf("VPP does not listen on %s", sock)
	}
	e.serve(t, "CHECK", id, ns, "default", "dpdk")

	e.serve(t, "DEL", id, ns, "default", "dpdk")
	if links := podLinks(t, e); len(links) != 0 {
		t.Errorf("VPP pod interfaces after DEL: %v", links)
	}
	if _, ok := e.m.fib.Programmed(0, netip.MustParsePrefix("10.244.0.2/32")); ok {
		t.Error("host route left after DEL")
	}
	if files := memifSocketFiles(t, e); slices.Contains(files, sock) {
		t.Errorf("memif socket %s still registered after DEL: %v", sock, files)
	}
}

// TestVhostUserPod: create_vhost_user_if_v2 with is_server makes VPP bind
// and listen on the socket (vhost_user_init_server_sock, SOCK_STREAM); as
// a client VPP only connects to the socket the VM makes. Deleting a server
// interface unlinks its socket file (vhost_user_term_if).
func TestVhostUserPod(t *testing.T) {
	tests := []struct {
		name   string
		ann    map[string]string
		server bool
	}{
		{"server", map[string]string{AnnotationInterface: "vhost-user"}, true},
		{"client", map[string]string{AnnotationInterface: "vhost-user", AnnotationVhostUserMode: "client"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, KindVeth)
			e.cluster.addPod("default", "vm", tt.ann)
			ns := newNetns(t)
			id := containerID(720 + i)
			sock := filepath.Join(e.cfg.VhostDir, "default", "vm", "vhost-user.sock")

			res, err := e.add(id, ns, "default", "vm")
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if len(res.Interfaces) != 1 || res.Interfaces[0].SocketPath != sock || len(res.IPs) != 1 || *res.IPs[0].Interface != 0 {
				t.Errorf("result interfaces %v, IPs %v: want only the vhost-user on %s, carrying the IP", res.Interfaces, res.IPs, sock)
			}
			if got := e.annotation("default", "vm", AnnotationVhostUserSocket); got != sock {
				t.Errorf("pod annotation %s = %q, want %q", AnnotationVhostUserSocket, got, sock)
			}
			if hasEth0(ns) {
				t.Error("a vhost-user pod got eth0 in its namespace")
			}
			links := podLinks(t, e)
			l, ok := links[podTag(id, "default", "vm")]
			if len(links) != 1 || !ok || l.Kind != interfaces.PodVhostUser || l.SocketPath != sock || l.VhostServer != tt.server || !l.Up {
				t.Fatalf("VPP pod interfaces = %v, want one vhost-user on %s, server %v, up", links, sock, tt.server)
			}
			if got := listening("unix", sock); got != tt.server {
				t.Errorf("listening on %s = %v, want %v (VPP is server: %v)", sock, got, tt.server, tt.server)
			}
			hostRouteVia(t, e, "10.244.0.2", l.SwIfIndex)
			e.serve(t, "CHECK", id, ns, "default", "vm")

			e.serve(t, "DEL", id, ns, "default", "vm")
			if links := podLinks(t, e); len(links) != 0 {
				t.Errorf("VPP pod interfaces after DEL: %v", links)
			}
			if _, ok := e.m.fib.Programmed(0, netip.MustParsePrefix("10.244.0.2/32")); ok {
				t.Error("host route left after DEL")
			}
			if _, err := os.Stat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file %s after DEL: %v, want none", sock, err)
			}
			if len(e.m.ipam.Records()) != 0 {
				t.Errorf("allocations after DEL: %v", e.m.ipam.Records())
			}
		})
	}
}

// TestRestartAdoptsSocketPods: an agent restart adopts memif and
// vhost-user pods without a single VPP write; DEL afterwards still removes
// their interfaces and memif socket registrations.
func TestRestartAdoptsSocketPods(t *testing.T) {
	e := newTestEnv(t, KindTap)
	pods := []struct {
		name string
		ann  map[string]string
	}{
		{"memif", map[string]string{AnnotationInterface: "memif"}},
		{"memif-only", map[string]string{AnnotationInterface: "memif", AnnotationMemifOnly: "true"}},
		{"vhost-server", map[string]string{AnnotationInterface: "vhost-user"}},
		{"vhost-client", map[string]string{AnnotationInterface: "vhost-user", AnnotationVhostUserMode: "client"}},
	}
	nets := make([]string, len(pods))
	for i, p := range pods {
		e.cluster.addPod("default", p.name, p.ann)
		nets[i] = newNetns(t)
		if _, err := e.add(containerID(730+i), nets[i], "default", p.name); err != nil {
			t.Fatalf("ADD %s: %v", p.name, err)
		}
	}
	before := podLinks(t, e)
	if len(before) != 5 { // the memif pod has two
		t.Fatalf("VPP pod interfaces before the restart: %v, want 5", before)
	}

	writes := e.vpp.Sim.WriteCalls()
	e.m = e.start()
	if w := e.vpp.Sim.WriteCalls() - writes; w != 0 {
		t.Errorf("restart wrote %d times to VPP, want 0: %v", w, e.vpp.Sim.CallCounts())
	}
	if n := len(e.m.ipam.Records()); n != len(pods) {
		t.Errorf("%d allocations after the restart, want %d", n, len(pods))
	}
	for i, p := range pods {
		e.serve(t, "CHECK", containerID(730+i), nets[i], "default", p.name)
	}
	for i, p := range pods {
		e.serve(t, "DEL", containerID(730+i), nets[i], "default", p.name)
	}
	if links := podLinks(t, e); len(links) != 0 {
		t.Errorf("VPP pod interfaces after DEL: %v", links)
	}
	for _, f := range memifSocketFiles(t, e) {
		if strings.HasPrefix(f, e.cfg.MemifDir) {
			t.Errorf("memif socket %s still registered after DEL", f)
		}
	}
}

// gcRequest is a GC call whose configuration lists valid attachments;
// valid nil leaves the key out.
func gcRequest(valid []string) *cni.Request {
	conf := `{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni"`
	if valid != nil {
		var atts []string
		for _, id := range valid {
			atts = append(atts, fmt.Sprintf(`{"containerID":%q,"ifname":"eth0"}`, id))
		}
		conf += `,"cni.dev/valid-attachments":[` + strings.Join(atts, ",") + `]`
	}
	r := request("GC", "", "", "", "")
	r.Args = ""
	r.Config = []byte(conf + "}")
	return r
}

// TestGC: GC releases every container not in cni.dev/valid-attachments,
// as DEL would (CNI spec 1.1, GC); a configuration without the key is
// malformed.
func TestGC(t *testing.T) {
	tests := []struct {
		name     string
		valid    []int // indexes of the pods listed; nil: the key is absent
		wantLeft []int
		wantCode uint
	}{
		{name: "one of two listed", valid: []int{0}, wantLeft: []int{0}},
		{name: "none listed", valid: []int{}, wantLeft: nil},
		{name: "both listed", valid: []int{0, 1}, wantLeft: []int{0, 1}},
		{name: "no valid-attachments", valid: nil, wantLeft: []int{0, 1}, wantCode: types.ErrInvalidNetworkConfig},
	}
	for k, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, KindVeth)
			// The second pod is a memif pod: GC must remove both its interfaces.
			e.cluster.addPod("default", "p1", map[string]string{AnnotationInterface: "memif"})
			ids := []string{containerID(740 + 2*k), containerID(741 + 2*k)}
			nets := []string{newNetns(t), newNetns(t)}
			for i := range ids {
				if _, err := e.add(ids[i], nets[i], "default", fmt.Sprint("p", i)); err != nil {
					t.Fatal(err)
				}
			}
			var valid []string
			if tt.valid != nil {
				valid = []string{}
				for _, i := range tt.valid {
					valid = append(valid, ids[i])
				}
			}
			_, err := e.m.Serve(context.Background(), gcRequest(valid))
			if cniCode(err) != tt.wantCode || (tt.wantCode == 0) != (err == nil) {
				t.Fatalf("GC = %v, want code %d", err, tt.wantCode)
			}
			links := podLinks(t, e)
			for i, id := range ids {
				pod := fmt.Sprint("p", i)
				want := slices.Contains(tt.wantLeft, i)
				_, allocated := e.m.record(id, nil)
				_, inVPP := links[podTag(id, "default", pod)]
				if allocated != want || inVPP != want {
					t.Errorf("%s: allocated %v, VPP interface %v; want %v", pod, allocated, inVPP, want)
				}
				if want {
					e.serve(t, "CHECK", id, nets[i], "default", pod)
				}
			}
			wantLinks := 0
			for _, i := range tt.wantLeft {
				wantLinks += 1 + i // p1 has a memif besides its veth
			}
			if len(links) != wantLinks {
				t.Errorf("VPP pod interfaces after GC: %v, want %d", links, wantLinks)
			}
		})
	}
}

// TestStatus: STATUS answers code 50 (plugin not available) until the
// manager knows the node and has reconciled with VPP.
func TestStatus(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	fresh := func(t *testing.T) *Manager {
		cfg := e.cfg
		cfg.StateDir = t.TempDir()
		m, err := New(cfg, e.ifaces, ip.New(e.vpp.Client, zaptest.NewLogger(t), ip.SourcePods), e.cluster, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name     string
		manager  func(t *testing.T) *Manager
		wantCode uint
	}{
		{"synced", func(*testing.T) *Manager { return e.m }, 0},
		{"before SetNode", fresh, 50},
		{"node known, not reconciled", func(t *testing.T) *Manager {
			m := fresh(t)
			if err := m.SetNode(e.node); err != nil {
				t.Fatal(err)
			}
			return m
		}, 50},
		{"VPP reconnected, not yet reconciled", func(t *testing.T) *Manager {
			m := fresh(t)
			if err := m.SetNode(e.node); err != nil {
				t.Fatal(err)
			}
			if err := m.Resync(context.Background()); err != nil {
				t.Fatal(err)
			}
			m.Invalidate()
			return m
		}, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.manager(t)
			req := request("STATUS", "", "", "", "")
			req.Args = ""
			res, err := m.Serve(context.Background(), req)
			if cniCode(err) != tt.wantCode || (tt.wantCode == 0) != (err == nil) || res != nil {
				t.Errorf("STATUS = %v, %v; want code %d", res, err, tt.wantCode)
			}
		})
	}
}
