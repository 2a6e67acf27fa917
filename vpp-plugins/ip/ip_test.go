package ip_test

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go.fd.io/govpp/binapi/fib_types"
	vppip "go.fd.io/govpp/binapi/ip"
	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vppapi/addr"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

var uplink = []sim.InterfaceSpec{{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.11/24"}, Up: true}}

func via(hops ...string) []ip.Path {
	var out []ip.Path
	for _, h := range hops {
		out = append(out, ip.Path{NextHop: netip.MustParseAddr(h), SwIfIndex: ip.NoInterface})
	}
	return out
}

func route(table uint32, p string, paths []ip.Path) ip.Route {
	return ip.Route{Table: table, Prefix: netip.MustParsePrefix(p), Paths: paths}
}

// fib reads every route of a table (all sources, v1 dump) as "prefix -> sorted next hops".
func fib(t *testing.T, env *simtest.Env, table uint32, ipv6 bool) map[string]string {
	t.Helper()
	stream, err := vppip.NewServiceClient(env.Client).IPRouteDump(context.Background(), &vppip.IPRouteDump{Table: vppip.IPTable{TableID: table, IsIP6: ipv6}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for {
		d, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var hops []string
		for _, p := range d.Route.Paths {
			switch p.Type {
			case fib_types.FIB_API_PATH_TYPE_DROP:
				hops = append(hops, "drop")
			case fib_types.FIB_API_PATH_TYPE_NORMAL:
				hops = append(hops, nhString(p))
			default:
				hops = append(hops, p.Type.String())
			}
		}
		slices.Sort(hops)
		out[addr.ToPrefix(d.Route.Prefix).String()] = strings.Join(hops, ",")
	}
}

func nhString(p fib_types.FibPath) string {
	if p.Proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
		return netip.AddrFrom16(p.Nh.Address.GetIP6()).String()
	}
	return netip.AddrFrom4(p.Nh.Address.GetIP4()).String()
}

func TestSyncMultipathAndIdempotence(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: uplink})
	d := ip.New(env.Client, zaptest.NewLogger(t), ip.SourceNode)
	ctx := context.Background()
	want := ip.Desired{Routes: []ip.Route{
		route(0, "10.244.1.0/24", via("192.168.10.12")),
		route(0, "203.0.113.10/32", via("192.168.10.12", "192.168.10.13")),
		route(0, "10.244.0.0/24", []ip.Path{{Type: ip.Drop}}),
	}}
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	got := fib(t, env, 0, false)
	for p, hops := range map[string]string{
		"10.244.1.0/24":   "192.168.10.12",
		"203.0.113.10/32": "192.168.10.12,192.168.10.13",
		"10.244.0.0/24":   "drop",
	} {
		if got[p] != hops {
			t.Errorf("FIB %s = %q, want %q", p, got[p], hops)
		}
	}
	before := env.Writes()
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if n := env.Writes() - before; n != 0 {
		t.Errorf("second Sync issued %d write calls, want 0 (%v)", n, env.Sim.CallCounts())
	}

	// One path of the ECMP route goes away: one call replaces the path set.
	want.Routes[1] = route(0, "203.0.113.10/32", via("192.168.10.13"))
	before = env.Writes()
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if n := env.Writes() - before; n != 1 {
		t.Errorf("removing one ECMP path took %d writes, want 1", n)
	}
	if got := fib(t, env, 0, false)["203.0.113.10/32"]; got != "192.168.10.13" {
		t.Errorf("after removing a path: %q", got)
	}
}

// Routes of other sources, and tables we did not name, survive; our stale
// routes and tables go.
func TestSyncOwnsOnlyItsRoutes(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: uplink})
	ctx := context.Background()
	rpc := vppip.NewServiceClient(env.Client)
	// An operator's route through the API (source API, src 0).
	operator := &vppip.IPRouteAddDel{IsAdd: true, Route: vppip.IPRoute{
		Prefix: addr.FromPrefix(netip.MustParsePrefix("172.16.0.0/16")), NPaths: 1,
		Paths: []fib_types.FibPath{{SwIfIndex: ^uint32(0), Proto: fib_types.FIB_API_PATH_NH_PROTO_IP4,
			Nh: fib_types.FibPathNh{Address: addr.FromAddr(netip.MustParseAddr("192.168.10.1")).Un}}},
	}}
	if _, err := rpc.IPRouteAddDel(ctx, operator); err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.IPTableAddDel(ctx, &vppip.IPTableAddDel{IsAdd: true, Table: vppip.IPTable{TableID: 7, Name: "operator"}}); err != nil {
		t.Fatal(err)
	}

	d := ip.New(env.Client, zaptest.NewLogger(t), ip.SourceNode)
	podTable := ip.Table{ID: 100, Name: ip.TableTag(ip.SourceNode, "pods")}
	first := ip.Desired{
		Tables: []ip.Table{podTable},
		Routes: []ip.Route{route(0, "10.244.1.0/24", via("192.168.10.12")), route(100, "10.244.0.0/24", []ip.Path{{Type: ip.Drop}})},
	}
	if err := d.Sync(ctx, first); err != nil {
		t.Fatal(err)
	}
	if got := fib(t, env, 100, false)["10.244.0.0/24"]; got != "drop" {
		t.Fatalf("route in our new table: %q", got)
	}
	if err := d.Sync(ctx, ip.Desired{}); err != nil {
		t.Fatal(err)
	}
	got := fib(t, env, 0, false)
	if got["172.16.0.0/16"] != "192.168.10.1" {
		t.Errorf("operator's route changed: %q", got["172.16.0.0/16"])
	}
	if _, ok := got["10.244.1.0/24"]; ok {
		t.Error("our stale route survived")
	}
	tables := map[uint32]bool{}
	ts, err := rpc.IPTableDump(ctx, &vppip.IPTableDump{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		d, err := ts.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !d.Table.IsIP6 {
			tables[d.Table.TableID] = true
		}
	}
	if !tables[7] || !tables[0] {
		t.Errorf("foreign or default table removed: %v", tables)
	}
	if tables[100] {
		t.Error("our stale table 100 survived")
	}
}

func TestSyncRestoresAfterVPPRestart(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: uplink})
	d := ip.New(env.Client, zaptest.NewLogger(t), ip.SourceNode)
	ctx := context.Background()
	want := ip.Desired{Routes: []ip.Route{route(0, "10.244.1.0/24", via("192.168.10.12"))}}
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	env.Restart()
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got := fib(t, env, 0, false)["10.244.1.0/24"]; got != "192.168.10.12" {
		t.Errorf("after restart: %q", got)
	}
	if n := env.Sim.Calls("fib_source_add"); n != 1 {
		t.Errorf("fib_source_add called %d times on the new VPP, want 1", n)
	}
	before := env.Writes()
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	if n := env.Writes() - before; n != 0 {
		t.Errorf("sync after restore wrote %d times", n)
	}
}

func TestInvalidRoutesAreReportedAndSkipped(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: uplink})
	d := ip.New(env.Client, zaptest.NewLogger(t), ip.SourceNode)
	err := d.Sync(context.Background(), ip.Desired{Routes: []ip.Route{
		route(0, "10.244.1.0/24", via("fd00::1")),
		route(0, "10.244.2.0/24", nil),
		route(42, "10.244.3.0/24", via("192.168.10.13")),
		route(0, "10.244.4.0/24", via("192.168.10.14")),
	}})
	if err == nil {
		t.Fatal("invalid routes were accepted silently")
	}
	for _, want := range []string{"10.244.1.0/24", "10.244.2.0/24", "table 42"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if got := fib(t, env, 0, false)["10.244.4.0/24"]; got != "192.168.10.14" {
		t.Errorf("the valid route was not programmed: %q", got)
	}
}

func TestUpdateWritesOnlyWhatChanges(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: uplink})
	d := ip.New(env.Client, zaptest.NewLogger(t), ip.SourceBGP)
	ctx := context.Background()
	if err := d.Update(ctx, []ip.Route{route(0, "198.18.0.0/15", via("192.168.10.1"))}); !errors.Is(err, ip.ErrNotSynced) {
		t.Fatalf("Update before Sync: %v, want ErrNotSynced", err)
	}
	if err := d.Sync(ctx, ip.Desired{Routes: []ip.Route{
		route(0, "198.18.0.0/15", via("192.168.10.1")),
		route(0, "198.51.100.0/24", via("192.168.10.1")),
	}}); err != nil {
		t.Fatal(err)
	}
	before := env.Writes()
	err := d.Update(ctx, []ip.Route{
		route(0, "198.18.0.0/15", via("192.168.10.1", "192.168.10.2")), // changed: one write
		route(0, "198.51.100.0/24", via("192.168.10.1")),               // unchanged: none
		route(0, "192.0.2.0/24", nil),                                  // delete of an unknown prefix: none
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := env.Writes() - before; n != 1 {
		t.Errorf("Update wrote %d times, want 1", n)
	}
	before = env.Writes()
	if err := d.Update(ctx, []ip.Route{route(0, "198.51.100.0/24", nil)}); err != nil {
		t.Fatal(err)
	}
	if n := env.Writes() - before; n != 1 {
		t.Errorf("withdrawing one route wrote %d times, want 1", n)
	}
	got := fib(t, env, 0, false)
	if got["198.18.0.0/15"] != "192.168.10.1,192.168.10.2" {
		t.Errorf("ECMP route = %q", got["198.18.0.0/15"])
	}
	if _, ok := got["198.51.100.0/24"]; ok {
		t.Error("withdrawn route still in the FIB")
	}
	d.Invalidate()
	if err := d.Update(ctx, nil); !errors.Is(err, ip.ErrNotSynced) {
		t.Errorf("Update after Invalidate: %v, want ErrNotSynced", err)
	}
}

// Two drivers on two FIB sources own disjoint routes: a full Sync of one
// never removes the other's.
func TestSourcesAreIndependent(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: uplink})
	ctx := context.Background()
	node := ip.New(env.Client, zaptest.NewLogger(t), ip.SourceNode)
	bgp := ip.New(env.Client, zaptest.NewLogger(t), ip.SourceBGP)
	if err := node.Sync(ctx, ip.Desired{Routes: []ip.Route{route(0, "10.244.1.0/24", via("192.168.10.12"))}}); err != nil {
		t.Fatal(err)
	}
	if err := bgp.Sync(ctx, ip.Desired{Routes: []ip.Route{route(0, "198.18.0.0/15", via("192.168.10.1"))}}); err != nil {
		t.Fatal(err)
	}
	if err := node.Sync(ctx, ip.Desired{}); err != nil {
		t.Fatal(err)
	}
	got := fib(t, env, 0, false)
	if _, ok := got["10.244.1.0/24"]; ok {
		t.Error("the node driver did not remove its own stale route")
	}
	if got["198.18.0.0/15"] != "192.168.10.1" {
		t.Errorf("the node driver's sync touched the BGP route: %q", got["198.18.0.0/15"])
	}
}
