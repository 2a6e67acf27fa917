package interfaces_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.fd.io/govpp/api"
	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	vppip "go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/memif"
	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// podEnv is a simulator with the node loopback made by Driver.Sync, which
// pod interfaces borrow their addresses from.
type podEnv struct {
	env  *simtest.Env
	d    *interfaces.Driver
	want interfaces.Desired
	loop uint32
}

func startPodEnv(t *testing.T) *podEnv {
	t.Helper()
	env := simtest.Start(t, sim.Options{})
	d := interfaces.New(env.Client, zaptest.NewLogger(t))
	want := interfaces.Desired{Loopbacks: []interfaces.Loopback{{Tag: nodeTag, Up: true, Addresses: pfx("10.244.0.1/32")}}}
	idx, err := d.Sync(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	return &podEnv{env: env, d: d, want: want, loop: idx[nodeTag]}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for host devices")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

func randSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// veth makes a veth pair in the test's namespace and returns the end VPP
// attaches to; the pair goes when the test ends.
func veth(t *testing.T) string {
	t.Helper()
	needRoot(t)
	base := "kvdt-" + randSuffix(t)
	run(t, "link", "add", base+"a", "type", "veth", "peer", "name", base+"b")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", base+"a").Run() })
	return base + "a"
}

// netns makes a named network namespace and returns its path.
func netns(t *testing.T) string {
	t.Helper()
	needRoot(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
	name := "kvdt-" + randSuffix(t)
	run(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/var/run/netns/" + name
}

func podTag(key string) string { return tag.New("pod", key) }

// podKinds are the pod interfaces of every kind with the VPP name each
// gets as the first of its kind in a fresh VPP:
// af_packet's format_af_packet_device_name (host-%s), memif's
// memif<socket id>/<id> (format_memif_device_name), vhost-user's
// VirtualEthernet0/0/<dev instance> (format_vhost_user_interface_name),
// tap's tun%u (format_virtio_device_name for a TUN).
var podKinds = []struct {
	name string
	make func(t *testing.T) interfaces.PodInterface
	// wantName is VPP's name; memifSock is the socket id memif got.
	wantName func(p interfaces.PodInterface, memifSock uint32) string
	// tun has no L2 address.
	tun bool
}{
	{
		name: "af_packet",
		make: func(t *testing.T) interfaces.PodInterface {
			return interfaces.PodInterface{Tag: podTag("default/afp"), Kind: interfaces.PodAfPacket, HostIfName: veth(t)}
		},
		wantName: func(p interfaces.PodInterface, _ uint32) string { return "host-" + p.HostIfName },
	},
	{
		name: "memif",
		make: func(t *testing.T) interfaces.PodInterface {
			return interfaces.PodInterface{Tag: podTag("default/memif"), Kind: interfaces.PodMemif,
				SocketPath: filepath.Join(t.TempDir(), "pod", "memif.sock")}
		},
		wantName: func(_ interfaces.PodInterface, sock uint32) string { return fmt.Sprintf("memif%d/0", sock) },
	},
	{
		name: "vhost-user server",
		make: func(t *testing.T) interfaces.PodInterface {
			return interfaces.PodInterface{Tag: podTag("default/vm-srv"), Kind: interfaces.PodVhostUser,
				SocketPath: filepath.Join(t.TempDir(), "vm", "vhost.sock"), VhostServer: true}
		},
		wantName: func(interfaces.PodInterface, uint32) string { return "VirtualEthernet0/0/0" },
	},
	{
		name: "vhost-user client",
		make: func(t *testing.T) interfaces.PodInterface {
			return interfaces.PodInterface{Tag: podTag("default/vm-cli"), Kind: interfaces.PodVhostUser,
				SocketPath: filepath.Join(t.TempDir(), "vm", "vhost.sock")}
		},
		wantName: func(interfaces.PodInterface, uint32) string { return "VirtualEthernet0/0/0" },
	},
	{
		name: "tap tun",
		make: func(t *testing.T) interfaces.PodInterface {
			return interfaces.PodInterface{Tag: podTag("default/tap"), Kind: interfaces.PodTap,
				HostIfName: "eth0", HostNamespace: netns(t), MTU: 1450}
		},
		wantName: func(interfaces.PodInterface, uint32) string { return "tun0" },
		tun:      true,
	},
}

// memifSockets is memif_socket_filename_dump: socket id by file name.
func memifSockets(t *testing.T, env *simtest.Env) map[string]uint32 {
	t.Helper()
	stream, err := memif.NewServiceClient(env.Client).MemifSocketFilenameDump(context.Background(), &memif.MemifSocketFilenameDump{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, d := range list {
		out[d.SocketFilename] = d.SocketID
	}
	return out
}

// unnumberedOf is ip_unnumbered_dump for one interface: the lender's index,
// or false when VPP lists none (vl_api_ip_unnumbered_dump_t_handler sends
// nothing for an interface that is not unnumbered).
func unnumberedOf(t *testing.T, env *simtest.Env, swIfIndex uint32) (uint32, bool) {
	t.Helper()
	stream, err := vppip.NewServiceClient(env.Client).IPUnnumberedDump(context.Background(),
		&vppip.IPUnnumberedDump{SwIfIndex: interface_types.InterfaceIndex(swIfIndex)})
	if err != nil {
		t.Fatal(err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	var lender []uint32
	for _, d := range list {
		if uint32(d.SwIfIndex) == swIfIndex {
			lender = append(lender, uint32(d.IPSwIfIndex))
		}
	}
	if len(lender) != 1 {
		return 0, false
	}
	return lender[0], true
}

// onlyLoopback fails unless VPP's interfaces are local0 and the node loopback.
func onlyLoopback(t *testing.T, env *simtest.Env) {
	t.Helper()
	for name, f := range observe(t, env) {
		if name != "local0" && f.tag != nodeTag {
			t.Errorf("interface %s (tag %q) left behind", name, f.tag)
		}
	}
}

// noPodSockets fails unless memif has only its default socket id 0
// (memif_init registers it).
func noPodSockets(t *testing.T, env *simtest.Env) {
	t.Helper()
	for path, id := range memifSockets(t, env) {
		if id != 0 {
			t.Errorf("memif socket %d (%s) left registered", id, path)
		}
	}
}

func TestPodLifecycle(t *testing.T) {
	for _, tc := range podKinds {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.make(t)
			pe := startPodEnv(t)
			p.Unnumbered = pe.loop
			ctx := context.Background()

			link, err := pe.d.CreatePod(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			var memifSock uint32
			if p.Kind == interfaces.PodMemif {
				id, ok := memifSockets(t, pe.env)[p.SocketPath]
				if !ok {
					t.Fatalf("memif socket %s not registered: %v", p.SocketPath, memifSockets(t, pe.env))
				}
				memifSock = id
			}
			if want := tc.wantName(p, memifSock); link.Name != want {
				t.Errorf("Name = %q, want %q", link.Name, want)
			}
			if link.Tag != p.Tag || link.Kind != p.Kind || !link.Up {
				t.Errorf("link = %+v, want tag %q, kind %s, up", link, p.Tag, p.Kind)
			}
			// Ethernet devices get 02:fe and a random tail when no MAC is
			// given (ethernet_mac_address_generate and the per-driver
			// equivalents); a TUN has none.
			if tc.tun {
				if link.MAC != nil {
					t.Errorf("TUN has MAC %s, want none", link.MAC)
				}
			} else if len(link.MAC) != 6 || link.MAC[0] != 0x02 || link.MAC[1] != 0xfe {
				t.Errorf("MAC = %q, want a generated 02:fe:xx:xx:xx:xx", link.MAC)
			}

			f, ok := observe(t, pe.env)[link.Name]
			if !ok || f.tag != p.Tag || !f.up {
				t.Errorf("VPP has %s as %+v (present %v), want tag %q and admin up", link.Name, f, ok, p.Tag)
			}
			if lender, ok := unnumberedOf(t, pe.env, link.SwIfIndex); !ok || lender != pe.loop {
				t.Errorf("unnumbered to %d (listed %v), want the loopback %d", lender, ok, pe.loop)
			}

			links, err := pe.d.PodLinks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := links[p.Tag]
			if len(links) != 1 || !ok {
				t.Fatalf("PodLinks = %v, want only %s", links, p.Tag)
			}
			if got.Kind != p.Kind || got.SwIfIndex != link.SwIfIndex || got.Name != link.Name || !got.Up ||
				got.HostIfName != link.HostIfName || got.HostNamespace != p.HostNamespace ||
				got.SocketPath != p.SocketPath || got.VhostServer != p.VhostServer || got.MAC.String() != link.MAC.String() {
				t.Errorf("PodLinks[%s] = %+v, want %+v", p.Tag, got, link)
			}
			// Loopback syncs leave pod interfaces alone, and a repeat writes nothing.
			before := pe.env.Writes()
			if _, err := pe.d.Sync(ctx, pe.want); err != nil {
				t.Fatal(err)
			}
			if n := pe.env.Writes() - before; n != 0 {
				t.Errorf("Sync with pod interfaces present wrote %d calls, want 0 (%v)", n, pe.env.Sim.CallCounts())
			}

			v, ok, err := pe.d.VerifyPod(ctx, link)
			if err != nil || !ok || !v.Up || v.Name != link.Name {
				t.Errorf("VerifyPod = %+v, %v, %v; want found, up, named %s", v, ok, err, link.Name)
			}

			if err := pe.d.DeletePod(ctx, link); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := pe.d.VerifyPod(ctx, link); err != nil || ok {
				t.Errorf("VerifyPod after DeletePod = %v, %v; want false, nil", ok, err)
			}
			if links, err := pe.d.PodLinks(ctx); err != nil || len(links) != 0 {
				t.Errorf("PodLinks after DeletePod = %v, %v; want none", links, err)
			}
			onlyLoopback(t, pe.env)
			noPodSockets(t, pe.env)
			if p.Kind == interfaces.PodVhostUser && p.VhostServer {
				// vhost_user_term_if unlinks a server's socket file.
				if _, err := os.Stat(p.SocketPath); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("vhost-user server socket %s still there: %v", p.SocketPath, err)
				}
			}

			// VPP no longer has it: the second delete is not an error.
			if err := pe.d.DeletePod(ctx, link); err != nil {
				t.Errorf("second DeletePod: %v", err)
			}
		})
	}
}

// A failed CreatePod removes what it made: no interface, no memif socket.
func TestCreatePodFailureLeavesNothing(t *testing.T) {
	const missingLender = 4242
	tests := []struct {
		name string
		make func(t *testing.T) interfaces.PodInterface
		// wantErr is VPP's retval, when VPP is the one refusing.
		wantErr error
		// noWrites: refused before anything reached VPP.
		noWrites bool
	}{
		{
			// af_packet_create_if: SIOCGIFINDEX fails, VNET_API_ERROR_INVALID_INTERFACE.
			name: "af_packet on a missing host interface",
			make: func(t *testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: podTag("x/afp"), Kind: interfaces.PodAfPacket, HostIfName: "kvdt-" + randSuffix(t) + "z"}
			},
			wantErr: api.INVALID_INTERFACE,
		},
		{
			name: "memif whose socket folder cannot be made",
			make: func(t *testing.T) interfaces.PodInterface {
				file := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return interfaces.PodInterface{Tag: podTag("x/memif"), Kind: interfaces.PodMemif, SocketPath: filepath.Join(file, "sub", "m.sock")}
			},
			noWrites: true,
		},
		{
			// memif_create_if: clib_socket_init refuses a path that is a
			// regular file, VNET_ERR_SYSCALL_ERROR_4.
			name: "memif whose socket path is a regular file",
			make: func(t *testing.T) interfaces.PodInterface {
				path := filepath.Join(t.TempDir(), "m.sock")
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return interfaces.PodInterface{Tag: podTag("x/memif"), Kind: interfaces.PodMemif, SocketPath: path}
			},
			wantErr: api.SYSCALL_ERROR_4,
		},
		{
			// vl_api_sw_interface_set_unnumbered_t_handler: a missing
			// lender is INVALID_SW_IF_INDEX_2, after the memif exists.
			name: "memif unnumbered to a missing interface",
			make: func(t *testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: podTag("x/memif"), Kind: interfaces.PodMemif,
					SocketPath: filepath.Join(t.TempDir(), "m.sock"), Unnumbered: missingLender}
			},
			wantErr: api.INVALID_SW_IF_INDEX_2,
		},
		{
			name: "vhost-user unnumbered to a missing interface",
			make: func(t *testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: podTag("x/vm"), Kind: interfaces.PodVhostUser,
					SocketPath: filepath.Join(t.TempDir(), "v.sock"), VhostServer: true, Unnumbered: missingLender}
			},
			wantErr: api.INVALID_SW_IF_INDEX_2,
		},
		{
			name: "af_packet unnumbered to a missing interface",
			make: func(t *testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: podTag("x/afp"), Kind: interfaces.PodAfPacket, HostIfName: veth(t), Unnumbered: missingLender}
			},
			wantErr: api.INVALID_SW_IF_INDEX_2,
		},
		{
			name: "tap unnumbered to a missing interface",
			make: func(t *testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: podTag("x/tap"), Kind: interfaces.PodTap,
					HostIfName: "eth0", HostNamespace: netns(t), Unnumbered: missingLender}
			},
			wantErr: api.INVALID_SW_IF_INDEX_2,
		},
		{
			name: "tag without the kube-vpp prefix",
			make: func(t *testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: "calico-vpp:pod", Kind: interfaces.PodMemif, SocketPath: filepath.Join(t.TempDir(), "m.sock")}
			},
			noWrites: true,
		},
		{
			name: "empty tag",
			make: func(t *testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Kind: interfaces.PodVhostUser, SocketPath: filepath.Join(t.TempDir(), "v.sock"), VhostServer: true}
			},
			noWrites: true,
		},
		{
			name: "unknown kind",
			make: func(*testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: podTag("x/veth"), Kind: "veth", HostIfName: "eth0"}
			},
			noWrites: true,
		},
		{
			// tap_create_v3's host_namespace is string[64].
			name: "tap namespace path too long for VPP",
			make: func(*testing.T) interfaces.PodInterface {
				return interfaces.PodInterface{Tag: podTag("x/tap"), Kind: interfaces.PodTap, HostIfName: "eth0",
					HostNamespace: "/var/run/netns/" + strings.Repeat("n", 64)}
			},
			noWrites: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.make(t)
			pe := startPodEnv(t)
			if p.Unnumbered == 0 {
				p.Unnumbered = pe.loop
			}
			before := pe.env.Writes()
			link, err := pe.d.CreatePod(context.Background(), p)
			if err == nil {
				t.Fatalf("CreatePod succeeded: %+v", link)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("CreatePod error = %v, want VPP's %v", err, tc.wantErr)
			}
			if n := pe.env.Writes() - before; tc.noWrites && n != 0 {
				t.Errorf("refused CreatePod wrote %d calls to VPP, want 0 (%v)", n, pe.env.Sim.CallCounts())
			}
			onlyLoopback(t, pe.env)
			noPodSockets(t, pe.env)
			if links, err := pe.d.PodLinks(context.Background()); err != nil || len(links) != 0 {
				t.Errorf("PodLinks = %v, %v; want none", links, err)
			}
		})
	}
}

// Pods of every kind side by side: PodLinks keys each by tag, loopback
// syncs never touch them (even one that wants no loopback at all), and a
// restarted VPP has none.
func TestPodLinksAcrossKindsAndRestart(t *testing.T) {
	pe := startPodEnv(t)
	ctx := context.Background()
	made := map[string]interfaces.PodInterface{}
	for _, tc := range podKinds {
		if (tc.name == "af_packet" || tc.name == "tap tun") && os.Geteuid() != 0 {
			continue
		}
		p := tc.make(t)
		p.Unnumbered = pe.loop
		if _, err := pe.d.CreatePod(ctx, p); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		made[p.Tag] = p
	}
	check := func(when string) {
		t.Helper()
		links, err := pe.d.PodLinks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != len(made) {
			t.Errorf("%s: PodLinks has %d, want %d: %v", when, len(links), len(made), links)
		}
		for tg, p := range made {
			l, ok := links[tg]
			if !ok || l.Kind != p.Kind || l.SocketPath != p.SocketPath || l.VhostServer != p.VhostServer ||
				l.HostNamespace != p.HostNamespace || l.HostIfName != p.HostIfName {
				t.Errorf("%s: PodLinks[%s] = %+v (present %v), want %+v", when, tg, l, ok, p)
			}
		}
	}
	check("after create")

	before := pe.env.Writes()
	if _, err := pe.d.Sync(ctx, pe.want); err != nil {
		t.Fatal(err)
	}
	if n := pe.env.Writes() - before; n != 0 {
		t.Errorf("repeat Sync wrote %d calls, want 0 (%v)", n, pe.env.Sim.CallCounts())
	}
	check("after a repeat Sync")

	// Only owned loopbacks are Sync's to delete; pod tags are of other kinds.
	if _, err := pe.d.Sync(ctx, interfaces.Desired{}); err != nil {
		t.Fatal(err)
	}
	check("after a Sync wanting no loopback")
	if _, ok := byTag(observe(t, pe.env), nodeTag); ok {
		t.Error("the unwanted loopback survived Sync")
	}

	pe.env.Restart()
	links, err := pe.d.PodLinks(ctx)
	if err != nil || len(links) != 0 {
		t.Errorf("PodLinks after a VPP restart = %v, %v; want none", links, err)
	}
}

// VerifyPod is false for an index now held by an interface with another tag.
func TestVerifyPodChecksTag(t *testing.T) {
	pe := startPodEnv(t)
	ctx := context.Background()
	p := interfaces.PodInterface{Tag: podTag("default/a"), Kind: interfaces.PodVhostUser,
		SocketPath: filepath.Join(t.TempDir(), "a.sock"), VhostServer: true, Unnumbered: pe.loop}
	link, err := pe.d.CreatePod(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	rpc := vppif.NewServiceClient(pe.env.Client)
	if _, err := rpc.SwInterfaceTagAddDel(ctx, &vppif.SwInterfaceTagAddDel{
		IsAdd: true, SwIfIndex: interface_types.InterfaceIndex(link.SwIfIndex), Tag: podTag("default/b"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := pe.d.VerifyPod(ctx, link); err != nil || ok {
		t.Errorf("VerifyPod of a retagged interface = %v, %v; want false, nil", ok, err)
	}
}
