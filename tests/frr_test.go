package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// frrDaemons is where Debian's frr package puts zebra and bgpd.
const frrDaemons = "/usr/lib/frr"

// frrConfig is the BGP side of one FRR instance. Neighbours are explicit,
// not a `bgp listen range` peer-group: a listen-range neighbour exists only
// while a node is connected, and the tests want to see a node that is down
// (state Active/Connect), and both sides connecting, as with a real ToR.
type frrConfig struct {
	ASN      uint32
	RouterID string
	// Neighbors are activated in the address family of their address:
	// an IPv4 session carries IPv4 unicast, an IPv6 session IPv6 unicast.
	Neighbors []frrNeighbor
	// Networks are originated with `network`; import-check is off, so no
	// matching route is needed in the RIB.
	Networks []string
	// MaximumPaths is the ECMP width for eBGP routes; 0 means 8.
	MaximumPaths int
	// RestartTime is the graceful-restart time this speaker announces,
	// in seconds; 0 means 120 (FRR's default).
	RestartTime int
}

type frrNeighbor struct {
	Address string
	// RemoteAS 0 means any other AS (`remote-as external`).
	RemoteAS uint32
	Password string
}

// frr is one FRR instance, zebra and bgpd, in a network namespace. Its
// configuration, pid files and sockets are in a private folder, so several
// run at once and none touches /etc/frr or /run/frr.
type frr struct {
	ns    string
	dir   string
	zebra *proc
	bgpd  *proc
}

// startFRR starts zebra and bgpd inside ns and waits until both answer on
// their vty sockets. It skips the test when FRR is not installed.
func startFRR(t *testing.T, ns string, cfg frrConfig) *frr {
	t.Helper()
	for _, p := range []string{filepath.Join(frrDaemons, "zebra"), filepath.Join(frrDaemons, "bgpd")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("FRR is not installed (%v); tests/install-deps.sh installs it", err)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skipf("FRR's vtysh is not installed (%v); tests/install-deps.sh installs it", err)
	}
	bgpdConf, err := cfg.render(ns)
	if err != nil {
		t.Fatalf("FRR config for namespace %s: %v", ns, err)
	}
	r := &frr{ns: ns, dir: frrDir(t)}
	zebraConf := fmt.Sprintf("hostname %s\nip forwarding\nipv6 forwarding\n", ns)
	files := map[string]string{"zebra.conf": zebraConf, "bgpd.conf": bgpdConf, "vtysh.conf": ""}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// bgpd connects to zebra's socket once it exists; starting it after
	// zebra answers avoids waiting out bgpd's reconnect timer.
	r.zebra = startIn(t, ns, filepath.Join(frrDaemons, "zebra"), r.daemonArgs("zebra")...)
	r.waitUp(t, "zebra", r.zebra)
	r.bgpd = startIn(t, ns, filepath.Join(frrDaemons, "bgpd"), r.daemonArgs("bgpd")...)
	r.waitUp(t, "bgpd", r.bgpd)
	return r
}

// frrDir is the instance's folder. Unix socket paths are limited to 107
// bytes, so a long TMPDIR falls back to a short folder under /tmp.
func frrDir(t *testing.T) string {
	dir := t.TempDir()
	if len(dir+"/zserv.api") < 100 {
		return dir
	}
	dir, err := os.MkdirTemp("/tmp", "kvt-frr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// daemonArgs: -f/-i/--vty_socket/-z keep every file in r.dir; -P 0 opens
// no TCP vty (-A only pins it to loopback should a default port apply). The daemons stay root (they need no privilege drop in a
// test), but FRR refuses a user outside its vty group, so the group is
// frrvty where the package made one.
func (r *frr) daemonArgs(daemon string) []string {
	group := "root"
	if _, err := user.LookupGroup("frrvty"); err == nil {
		group = "frrvty"
	}
	return []string{
		"-f", filepath.Join(r.dir, daemon+".conf"),
		"-i", filepath.Join(r.dir, daemon+".pid"),
		"--vty_socket", r.dir,
		"-z", filepath.Join(r.dir, "zserv.api"),
		"-u", "root", "-g", group,
		"-A", "127.0.0.1", "-P", "0",
		"--log", "stdout", "--log-level", "informational",
	}
}

func (r *frr) waitUp(t *testing.T, daemon string, p *proc) {
	t.Helper()
	eventually(t, 10*time.Second, daemon+" in "+r.ns+" answering on its vty", func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s in %s exited: %v\n%s", daemon, r.ns, p.err, p.out.String())
		default:
		}
		_, err := r.try(daemon, "show version")
		return err == nil
	})
	// A daemon logs a line it cannot parse and runs on without it; the
	// config is read before the vty serves, so the log line is out by now.
	if out := p.out.String(); strings.Contains(out, "on config line") {
		t.Fatalf("%s in %s rejected part of its config:\n%s", daemon, r.ns, out)
	}
}

func (cfg frrConfig) render(hostname string) (string, error) {
	if cfg.ASN == 0 {
		return "", fmt.Errorf("ASN: must not be 0")
	}
	if a, err := netip.ParseAddr(cfg.RouterID); err != nil || !a.Is4() {
		return "", fmt.Errorf("RouterID %q: want an IPv4 address", cfg.RouterID)
	}
	paths := cfg.MaximumPaths
	if paths == 0 {
		paths = 8
	}
	if paths < 1 || paths > 256 {
		return "", fmt.Errorf("MaximumPaths %d: want 1..256", cfg.MaximumPaths)
	}
	restart := cfg.RestartTime
	if restart == 0 {
		restart = 120
	}
	if restart < 1 || restart > 4095 {
		return "", fmt.Errorf("RestartTime %d: want 1..4095 seconds", cfg.RestartTime)
	}
	af := map[bool][]string{} // lines of the address family, by is-IPv6
	for _, p := range cfg.Networks {
		prefix, err := netip.ParsePrefix(p)
		if err != nil || prefix.Masked() != prefix {
			return "", fmt.Errorf("Networks: %q is not a prefix", p)
		}
		af[prefix.Addr().Is6()] = append(af[prefix.Addr().Is6()], "network "+p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname %s\n", hostname)
	// FRR uses the link-local next hop of an IPv6 route learned on a
	// shared segment; the tests (and the nodes' agents) talk in global
	// addresses.
	b.WriteString("route-map GLOBAL-NEXTHOP permit 10\n set ipv6 next-hop prefer-global\nexit\n")
	fmt.Fprintf(&b, "router bgp %d\n", cfg.ASN)
	fmt.Fprintf(&b, " bgp router-id %s\n", cfg.RouterID)
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n no bgp network import-check\n")
	// Nodes have an AS each; their routes to one prefix are still ECMP.
	b.WriteString(" bgp bestpath as-path multipath-relax\n")
	// `bgp graceful-restart` makes this speaker both restarter and helper.
	fmt.Fprintf(&b, " bgp graceful-restart\n bgp graceful-restart restart-time %d\n", restart)
	b.WriteString(" timers bgp 1 3\n bgp log-neighbor-changes\n")
	for i, n := range cfg.Neighbors {
		addr, err := netip.ParseAddr(n.Address)
		if err != nil {
			return "", fmt.Errorf("Neighbors[%d].Address %q: %w", i, n.Address, err)
		}
		remote := "external"
		if n.RemoteAS != 0 {
			remote = fmt.Sprint(n.RemoteAS)
		}
		fmt.Fprintf(&b, " neighbor %s remote-as %s\n", addr, remote)
		fmt.Fprintf(&b, " neighbor %s timers 1 3\n neighbor %s timers connect 1\n", addr, addr)
		fmt.Fprintf(&b, " neighbor %s advertisement-interval 0\n", addr)
		if strings.ContainsAny(n.Password, " \t\n") {
			return "", fmt.Errorf("Neighbors[%d].Password: must not contain white space", i)
		}
		if n.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", addr, n.Password)
		}
		af[addr.Is6()] = append(af[addr.Is6()], fmt.Sprintf("neighbor %s activate", addr))
		if addr.Is6() {
			af[true] = append(af[true], fmt.Sprintf("neighbor %s route-map GLOBAL-NEXTHOP in", addr))
		}
	}
	for _, v6 := range []bool{false, true} {
		fmt.Fprintf(&b, " address-family %s unicast\n  maximum-paths %d\n", map[bool]string{false: "ipv4", true: "ipv6"}[v6], paths)
		for _, line := range af[v6] {
			b.WriteString("  " + line + "\n")
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("exit\n")
	return b.String(), nil
}

// vtysh runs commands on one daemon ("zebra" or "bgpd") and fails the test
// when it cannot.
func (r *frr) vtysh(t *testing.T, daemon string, commands ...string) string {
	t.Helper()
	out, err := r.try(daemon, commands...)
	if err != nil {
		t.Fatalf("vtysh in %s: %v", r.ns, err)
	}
	return out
}

func (r *frr) try(daemon string, commands ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// --config_dir keeps vtysh off /etc/frr/vtysh.conf.
	args := []string{"--vty_socket", r.dir, "--config_dir", r.dir, "-d", daemon}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "vtysh", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("vtysh -d %s %q: %w: %s%s", daemon, commands, err, out, stderr.String())
	}
	return string(out), nil
}

func (r *frr) query(t *testing.T, daemon, command string, v any) {
	t.Helper()
	out := r.vtysh(t, daemon, command)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s in %s: parsing %q: %v\n%s", daemon, r.ns, command, err, out)
	}
}

// routes is zebra's view: prefix -> sorted next hops of the selected,
// installed BGP route.
func (r *frr) routes(t *testing.T, v6 bool) map[string][]string {
	t.Helper()
	command := "show ip route bgp json"
	if v6 {
		command = "show ipv6 route bgp json"
	}
	var rib map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
		} `json:"nexthops"`
	}
	r.query(t, "zebra", command, &rib)
	got := make(map[string][]string)
	for prefix, entries := range rib {
		for _, e := range entries {
			if e.Protocol != "bgp" || !e.Selected || !e.Installed {
				continue
			}
			var hops []string
			for _, nh := range e.Nexthops {
				if nh.Active && nh.IP != "" {
					hops = append(hops, nh.IP)
				}
			}
			slices.Sort(hops)
			got[prefix] = hops
		}
	}
	return got
}

// neighbors maps each configured neighbour to its BGP state
// ("Established", "Active", "Connect", ...).
func (r *frr) neighbors(t *testing.T) map[string]string {
	t.Helper()
	var peers map[string]struct {
		State string `json:"bgpState"`
	}
	r.query(t, "bgpd", "show bgp neighbors json", &peers)
	got := make(map[string]string, len(peers))
	for addr, p := range peers {
		got[addr] = p.State
	}
	return got
}

// bgpPath is one path in bgpd's table.
type bgpPath struct {
	Peer      string
	NextHops  []string
	Valid     bool
	Best      bool
	Multipath bool // an ECMP member other than the best path
	Stale     bool // kept through a neighbour's graceful restart
}

// bgpRoutes is bgpd's table (Adj-RIB-In after policy plus local routes):
// prefix -> paths, sorted by peer.
func (r *frr) bgpRoutes(t *testing.T, v6 bool) map[string][]bgpPath {
	t.Helper()
	command := "show bgp ipv4 unicast json"
	if v6 {
		command = "show bgp ipv6 unicast json"
	}
	var table struct {
		Routes map[string][]struct {
			PeerID    string `json:"peerId"`
			Valid     bool   `json:"valid"`
			Best      bool   `json:"bestpath"`
			Multipath bool   `json:"multipath"`
			Stale     bool   `json:"stale"`
			Nexthops  []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"routes"`
	}
	r.query(t, "bgpd", command, &table)
	got := make(map[string][]bgpPath, len(table.Routes))
	for prefix, paths := range table.Routes {
		for _, p := range paths {
			bp := bgpPath{Peer: p.PeerID, Valid: p.Valid, Best: p.Best, Multipath: p.Multipath, Stale: p.Stale}
			for _, nh := range p.Nexthops {
				bp.NextHops = append(bp.NextHops, nh.IP)
			}
			got[prefix] = append(got[prefix], bp)
		}
		slices.SortFunc(got[prefix], func(a, b bgpPath) int { return strings.Compare(a.Peer, b.Peer) })
	}
	return got
}

// waitEstablished waits until every given neighbour is Established.
func (r *frr) waitEstablished(t *testing.T, within time.Duration, addrs ...string) {
	t.Helper()
	eventually(t, within, fmt.Sprintf("BGP sessions %v established in %s", addrs, r.ns), func() bool {
		states := r.neighbors(t)
		for _, a := range addrs {
			if states[a] != "Established" {
				return false
			}
		}
		return true
	})
}

// stop ends bgpd and zebra with SIGTERM, as an operator would, and waits.
// Peers of FRR 8.4 see "NSF peer closed the session" and, as helpers, keep
// its routes stale for the restart time it announced.
func (r *frr) stop(t *testing.T) {
	t.Helper()
	r.bgpd.stop(t)
	r.zebra.stop(t)
}

// crash kills bgpd and zebra (SIGKILL): the TCP sessions drop with no
// word from bgpd, the failure graceful restart is for.
func (r *frr) crash() {
	r.bgpd.kill(syscall.SIGKILL)
	r.zebra.kill(syscall.SIGKILL)
}

// The harness's own tests. FRR in a node's namespace stands in for the
// agent's BGP speaker.

// A node's route reaches the ToR's RIB and kernel via the node's address;
// when the speaker dies the ToR keeps it as stale for the restart time the
// speaker announced (graceful restart, RFC 4724 section 4.2), then drops it.
func TestFRRFabricLearnsAndForgetsNodeRoute(t *testing.T) {
	t.Parallel()
	f := newFabric(t, "node-a", "node-b")
	a, b := f.nodeIP("node-a"), f.nodeIP("node-b")
	tor := startFRR(t, f.torNS(), frrConfig{ASN: 65000, RouterID: torIP,
		Neighbors: []frrNeighbor{{Address: a, RemoteAS: 65011}, {Address: b, RemoteAS: 65012}}})
	speaker := startFRR(t, f.nodeNS("node-a"), frrConfig{ASN: 65011, RouterID: a, RestartTime: 2,
		Neighbors: []frrNeighbor{{Address: torIP, RemoteAS: 65000}}, Networks: []string{"10.244.0.0/24"}})

	const pods = "10.244.0.0/24"
	tor.waitEstablished(t, 20*time.Second, a)
	eventually(t, 10*time.Second, pods+" via node-a in the ToR's RIB", func() bool {
		return slices.Equal(tor.routes(t, false)[pods], []string{a})
	})
	if out, _ := runIn(t, 5*time.Second, f.torNS(), "ip", "route", "show", pods); !strings.Contains(out, "via "+a) {
		t.Errorf("ToR kernel route for %s: %q, want via %s", pods, out, a)
	}
	if st := tor.neighbors(t)[b]; st == "Established" || st == "" {
		t.Errorf("node-b runs no speaker, yet the ToR's session to it is %q", st)
	}

	speaker.crash()
	eventually(t, 5*time.Second, pods+" kept as stale", func() bool {
		paths := tor.bgpRoutes(t, false)[pods]
		return len(paths) == 1 && paths[0].Stale && len(tor.routes(t, false)[pods]) == 1
	})
	eventually(t, 10*time.Second, pods+" removed after the restart time", func() bool {
		_, ok := tor.routes(t, false)[pods]
		return !ok
	})
}

// Two nodes announcing one service address give one ToR route with both
// as next hops; the ToRs' own prefix reaches both nodes through both ToRs;
// IPv6 sessions and an MD5-protected session work; a node that stops is
// taken out of the ECMP set.
func TestFRRFabricECMP(t *testing.T) {
	t.Parallel()
	f := newFabric(t, "node-a", "node-b")
	tor2NS := f.addSecondToR()
	a, b, a6 := f.nodeIP("node-a"), f.nodeIP("node-b"), f.nodeIP6("node-a")
	const vip, torNet, pods6, secret = "203.0.113.10/32", "198.18.0.0/15", "fd00:10:244::/64", "kube-vpp"

	tor := startFRR(t, f.torNS(), frrConfig{ASN: 65000, RouterID: torIP, Networks: []string{torNet},
		Neighbors: []frrNeighbor{{Address: a, RemoteAS: 65011, Password: secret}, {Address: b, RemoteAS: 65012}, {Address: a6, RemoteAS: 65011}}})
	tor2 := startFRR(t, tor2NS, frrConfig{ASN: 65000, RouterID: tor2IP, Networks: []string{torNet},
		Neighbors: []frrNeighbor{{Address: a, RemoteAS: 65011}, {Address: b, RemoteAS: 65012}}})
	nodeA := startFRR(t, f.nodeNS("node-a"), frrConfig{ASN: 65011, RouterID: a, RestartTime: 2, Networks: []string{vip, pods6},
		Neighbors: []frrNeighbor{{Address: torIP, RemoteAS: 65000, Password: secret}, {Address: tor2IP, RemoteAS: 65000}, {Address: torIP6, RemoteAS: 65000}}})
	nodeB := startFRR(t, f.nodeNS("node-b"), frrConfig{ASN: 65012, RouterID: b, RestartTime: 2, Networks: []string{vip},
		Neighbors: []frrNeighbor{{Address: torIP, RemoteAS: 65000}, {Address: tor2IP, RemoteAS: 65000}}})

	tor.waitEstablished(t, 20*time.Second, a, b, a6)
	tor2.waitEstablished(t, 20*time.Second, a, b)
	eventually(t, 10*time.Second, vip+" via node-a and node-b at the ToR", func() bool {
		return slices.Equal(tor.routes(t, false)[vip], []string{a, b})
	})
	eventually(t, 10*time.Second, pods6+" via node-a's global address at the ToR", func() bool {
		return slices.Equal(tor.routes(t, true)[pods6], []string{a6})
	})
	for name, node := range map[string]*frr{"node-a": nodeA, "node-b": nodeB} {
		eventually(t, 10*time.Second, torNet+" via both ToRs at "+name, func() bool {
			return slices.Equal(node.routes(t, false)[torNet], []string{torIP, tor2IP})
		})
	}
	paths := tor.bgpRoutes(t, false)[vip]
	// FRR flags the best path "bestpath" and the other ECMP members "multipath".
	if len(paths) != 2 || paths[0].Peer != a || paths[1].Peer != b || paths[0].Best == paths[1].Best ||
		!(paths[0].Best || paths[0].Multipath) || !(paths[1].Best || paths[1].Multipath) {
		t.Errorf("ToR's BGP paths for %s: %+v, want one best and one multipath, from %s and %s", vip, paths, a, b)
	}

	nodeB.stop(t)
	eventually(t, 10*time.Second, vip+" via node-a only after node-b stopped", func() bool {
		return slices.Equal(tor.routes(t, false)[vip], []string{a})
	})
}

// Bad harness input names the field instead of starting a half-configured FRR.
func TestFRRConfigRejectsBadInput(t *testing.T) {
	good := frrConfig{ASN: 65000, RouterID: torIP, Neighbors: []frrNeighbor{{Address: "192.168.10.11"}}}
	tests := []struct {
		field string
		edit  func(*frrConfig)
	}{
		{"ASN", func(c *frrConfig) { c.ASN = 0 }},
		{"RouterID", func(c *frrConfig) { c.RouterID = "fd00::1" }},
		{"MaximumPaths", func(c *frrConfig) { c.MaximumPaths = 300 }},
		{"RestartTime", func(c *frrConfig) { c.RestartTime = -1 }},
		{"Networks", func(c *frrConfig) { c.Networks = []string{"10.244.0.1/24"} }},
		{"Neighbors[0].Address", func(c *frrConfig) { c.Neighbors = []frrNeighbor{{Address: "node-a"}} }},
		{"Neighbors[0].Password", func(c *frrConfig) { c.Neighbors = []frrNeighbor{{Address: "192.168.10.11", Password: "a b"}} }},
	}
	if _, err := good.render("tor"); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tt := range tests {
		cfg := good
		tt.edit(&cfg)
		if _, err := cfg.render("tor"); err == nil || !strings.HasPrefix(err.Error(), tt.field) {
			t.Errorf("%s: error %v, want one naming the field", tt.field, err)
		}
	}
}
