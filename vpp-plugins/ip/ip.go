package ip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/fib"
	"go.fd.io/govpp/binapi/fib_types"
	vppip "go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/addr"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// FIB sources kube-vpp registers in VPP (fib_source_add). Each Driver owns
// the routes of one source, so routes with different lifecycles (node
// routes, BGP-learned routes, pod host routes) never remove each other.
const (
	SourceNode = "kube-vpp"
	SourceBGP  = "kube-vpp-bgp"
	SourcePods = "kube-vpp-pods"
	// SourceServices holds the ICMP-unreachable routes of service IPs.
	SourceServices = "kube-vpp-services"
)

// sourcePriority sits just below VPP's API source (0x80, fib_source.h), so
// a route an operator adds by hand for the same prefix wins over ours.
const sourcePriority = 0x81

// Driver is the only code that sends VPP's ip table and route messages.
type Driver struct {
	rpc    vppip.RPCService
	fib    fib.RPCService
	log    *zap.Logger
	source string

	// mu serialises writers; cache is what the last Sync left in VPP for
	// this source, so Update can write only what changes.
	mu     sync.Mutex
	cache  map[routeKey]Route
	tables map[tableKey]Table
	src    uint8
	synced bool
}

// ErrNotSynced is returned by Update before a Sync has succeeded on the
// current VPP connection.
var ErrNotSynced = errors.New("ip driver has not synced with VPP yet")

// New returns a driver sending on conn that owns the routes of the named
// FIB source (SourceNode, SourceBGP or SourcePods).
func New(conn api.Connection, log *zap.Logger, source string) *Driver {
	return &Driver{rpc: vppip.NewServiceClient(conn), fib: fib.NewServiceClient(conn),
		log: log.Named("ip").With(zap.String("fib_source", source)), source: source}
}

// TableTag names a table owned by the driver of source; only that driver
// deletes it when no longer wanted.
func TableTag(source, key string) string { return tag.New("table", source+"/"+key) }

// Invalidate forgets what the driver believes VPP holds; call it when VPP
// reconnects, then Sync.
func (d *Driver) Invalidate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.synced, d.cache = false, nil
}

// Messages lists every message the driver sends or expects.
func Messages() []api.Message {
	return []api.Message{
		&fib.FibSourceAdd{}, &fib.FibSourceAddReply{},
		&fib.FibSourceDump{}, &fib.FibSourceDetails{},
		&vppip.IPTableDump{}, &vppip.IPTableDetails{},
		&vppip.IPTableAddDel{}, &vppip.IPTableAddDelReply{},
		&vppip.IPRouteV2Dump{}, &vppip.IPRouteV2Details{},
		&vppip.IPRouteAddDelV2{}, &vppip.IPRouteAddDelV2Reply{},
	}
}

// Sync makes VPP's owned tables and routes equal want. Order is safe for
// traffic: tables are created first, then routes are added or replaced in
// place (one call swaps a route's whole path set), then stale routes go, and
// stale tables last. Routes of other sources and untagged tables are never
// touched. Errors on single routes do not stop the rest.
func (d *Driver) Sync(ctx context.Context, want Desired) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.synced = false
	src, err := d.ensureSource(ctx)
	if err != nil {
		return err
	}
	tables, err := d.dumpTables(ctx)
	if err != nil {
		return err
	}

	var errs []error
	wantTables := map[tableKey]bool{}
	for _, t := range want.Tables {
		k := tableKey{t.ID, t.IPv6}
		wantTables[k] = true
		if _, ok := tables[k]; ok || t.ID == 0 {
			continue
		}
		if err := d.addTable(ctx, t); err != nil {
			errs = append(errs, err)
			continue
		}
		tables[k] = t
	}

	have := map[routeKey]Route{}
	for k := range tables {
		routes, err := d.routes(ctx, k, src)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		for _, r := range routes {
			have[r.key()] = r
		}
	}

	// The cache starts as what VPP holds and follows every write below.
	d.src, d.tables, d.cache = src, tables, have
	stale := sortedKeys(have)
	wantRoutes := map[routeKey]bool{}
	for _, r := range sortedRoutes(want.Routes) {
		wantRoutes[r.key()] = true
		if err := d.upsert(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range stale {
		if !wantRoutes[k] {
			errs = append(errs, d.remove(ctx, k))
		}
	}
	for k, t := range tables {
		if k.id == 0 || wantTables[k] || !strings.HasPrefix(t.Name, TableTag(d.source, "")) {
			continue
		}
		if _, err := d.rpc.IPTableAddDel(ctx, &vppip.IPTableAddDel{IsAdd: false, Table: vppip.IPTable{TableID: k.id, IsIP6: k.ipv6}}); err != nil {
			errs = append(errs, fmt.Errorf("deleting table %d (%s): %w", k.id, t.Name, err))
			continue
		}
		delete(d.tables, k)
		d.log.Info("deleted table", zap.Uint32("table", k.id), zap.Bool("ipv6", k.ipv6), zap.String("tag", t.Name))
	}
	d.synced = true
	return errors.Join(errs...)
}

// Update programs only the given routes, each replacing its prefix's path
// set, or removing the prefix when it has no paths. Its cost is the number
// of routes given, whatever VPP holds; it relies on what the last Sync
// found, so it returns ErrNotSynced until a Sync succeeded.
func (d *Driver) Update(ctx context.Context, routes []Route) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.synced {
		return ErrNotSynced
	}
	var errs []error
	for _, r := range routes {
		if len(r.Paths) == 0 {
			errs = append(errs, d.remove(ctx, r.key()))
			continue
		}
		errs = append(errs, d.upsert(ctx, r))
	}
	return errors.Join(errs...)
}

// upsert programs r unless VPP already has it; d.mu is held.
func (d *Driver) upsert(ctx context.Context, r Route) error {
	if err := r.Validate(); err != nil {
		return err
	}
	k := r.key()
	if cur, ok := d.cache[k]; ok && samePaths(cur.Paths, r.Paths) {
		return nil
	}
	if _, ok := d.tables[tableKey{r.Table, r.Prefix.Addr().Is6()}]; !ok {
		return fmt.Errorf("route %s: table %d does not exist", k, r.Table)
	}
	if err := d.setRoute(ctx, d.src, r, true); err != nil {
		return err
	}
	d.cache[k] = r
	d.log.Info("programmed route", zap.Stringer("route", k), zap.Stringers("paths", r.Paths))
	return nil
}

// remove deletes our route for k if VPP has one; d.mu is held.
func (d *Driver) remove(ctx context.Context, k routeKey) error {
	r, ok := d.cache[k]
	if !ok {
		return nil
	}
	if err := d.setRoute(ctx, d.src, r, false); err != nil {
		return err
	}
	delete(d.cache, k)
	d.log.Info("removed route", zap.Stringer("route", k))
	return nil
}

// ensureSource finds the driver's FIB source, registering it when VPP (new,
// or restarted) does not have it yet. fib_source_add allocates a new ID on every
// call, so it must only run after the dump came back without ours.
func (d *Driver) ensureSource(ctx context.Context) (uint8, error) {
	id, found, err := d.findSource(ctx)
	if err != nil || found {
		return id, err
	}
	rep, err := d.fib.FibSourceAdd(ctx, &fib.FibSourceAdd{Src: fib.FibSource{Name: d.source, Priority: sourcePriority}})
	if err != nil {
		return 0, fmt.Errorf("fib_source_add %s: %w", d.source, err)
	}
	d.log.Info("registered FIB source", zap.String("name", d.source), zap.Uint8("id", rep.ID))
	return rep.ID, nil
}

func (d *Driver) dumpTables(ctx context.Context) (map[tableKey]Table, error) {
	stream, err := d.rpc.IPTableDump(ctx, &vppip.IPTableDump{})
	if err != nil {
		return nil, fmt.Errorf("ip_table_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("ip_table_dump: %w", err)
	}
	out := map[tableKey]Table{}
	for _, det := range list {
		t := det.Table
		out[tableKey{t.TableID, t.IsIP6}] = Table{ID: t.TableID, IPv6: t.IsIP6, Name: t.Name}
	}
	return out, nil
}

func (d *Driver) addTable(ctx context.Context, t Table) error {
	if _, err := d.rpc.IPTableAddDel(ctx, &vppip.IPTableAddDel{IsAdd: true, Table: vppip.IPTable{TableID: t.ID, IsIP6: t.IPv6, Name: t.Name}}); err != nil {
		return fmt.Errorf("creating table %d (%s): %w", t.ID, t.Name, err)
	}
	d.log.Info("created table", zap.Uint32("table", t.ID), zap.Bool("ipv6", t.IPv6), zap.String("tag", t.Name))
	return nil
}

func (d *Driver) routes(ctx context.Context, t tableKey, src uint8) ([]Route, error) {
	stream, err := d.rpc.IPRouteV2Dump(ctx, &vppip.IPRouteV2Dump{Src: src, Table: vppip.IPTable{TableID: t.id, IsIP6: t.ipv6}})
	if err != nil {
		return nil, fmt.Errorf("ip_route_v2_dump table %d: %w", t.id, err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("ip_route_v2_dump table %d: %w", t.id, err)
	}
	out := make([]Route, 0, len(list))
	for _, det := range list {
		r := Route{Table: det.Route.TableID, Prefix: addr.ToPrefix(det.Route.Prefix)}
		for _, p := range det.Route.Paths {
			r.Paths = append(r.Paths, fromFibPath(p))
		}
		out = append(out, r)
	}
	return out, nil
}

// setRoute adds r, replacing the source's whole path set (is_multipath=0),
// or deletes every path our source holds for the prefix.
func (d *Driver) setRoute(ctx context.Context, src uint8, r Route, add bool) error {
	msg := &vppip.IPRouteAddDelV2{IsAdd: add, Route: vppip.IPRouteV2{
		TableID: r.Table, Prefix: addr.FromPrefix(r.Prefix.Masked()), Src: src,
	}}
	if add {
		for _, p := range r.Paths {
			msg.Route.Paths = append(msg.Route.Paths, toFibPath(r, p))
		}
		msg.Route.NPaths = uint8(len(msg.Route.Paths))
	}
	if _, err := d.rpc.IPRouteAddDelV2(ctx, msg); err != nil {
		verb := "adding"
		if !add {
			verb = "deleting"
		}
		return fmt.Errorf("%s route %s: %w", verb, r.key(), err)
	}
	return nil
}

func toFibPath(r Route, p Path) fib_types.FibPath {
	fp := fib_types.FibPath{
		SwIfIndex: p.SwIfIndex, TableID: r.Table, Weight: p.Weight, Preference: p.Preference,
		Proto: fib_types.FIB_API_PATH_NH_PROTO_IP4,
	}
	if r.Prefix.Addr().Is6() {
		fp.Proto = fib_types.FIB_API_PATH_NH_PROTO_IP6
	}
	switch p.Type {
	case Drop:
		fp.Type = fib_types.FIB_API_PATH_TYPE_DROP
	case Local:
		fp.Type = fib_types.FIB_API_PATH_TYPE_LOCAL
	case Unreachable:
		fp.Type = fib_types.FIB_API_PATH_TYPE_ICMP_UNREACH
	case Prohibit:
		fp.Type = fib_types.FIB_API_PATH_TYPE_ICMP_PROHIBIT
	default:
		fp.Type = fib_types.FIB_API_PATH_TYPE_NORMAL
	}
	if p.Type != Forward {
		fp.SwIfIndex = NoInterface
	}
	if p.NextHop.IsValid() {
		fp.Nh.Address = addr.FromAddr(p.NextHop).Un
	}
	return fp
}

func fromFibPath(fp fib_types.FibPath) Path {
	p := Path{SwIfIndex: fp.SwIfIndex, Weight: fp.Weight, Preference: fp.Preference}
	switch fp.Type {
	case fib_types.FIB_API_PATH_TYPE_DROP:
		p.Type = Drop
	case fib_types.FIB_API_PATH_TYPE_LOCAL:
		p.Type = Local
	case fib_types.FIB_API_PATH_TYPE_ICMP_UNREACH:
		p.Type = Unreachable
	case fib_types.FIB_API_PATH_TYPE_ICMP_PROHIBIT:
		p.Type = Prohibit
	default:
		p.Type = Forward
	}
	af := ip_types.ADDRESS_IP4
	if fp.Proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
		af = ip_types.ADDRESS_IP6
	}
	if nh := addr.ToAddr(ip_types.Address{Af: af, Un: fp.Nh.Address}); !nh.IsUnspecified() {
		p.NextHop = nh
	}
	return p.normal()
}

func sortedRoutes(rs []Route) []Route {
	out := append([]Route(nil), rs...)
	sort.Slice(out, func(i, j int) bool { return out[i].key().String() < out[j].key().String() })
	return out
}

func sortedKeys(m map[routeKey]Route) []routeKey {
	out := make([]routeKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Programmed returns the route this driver holds in VPP for prefix in
// table, as of its last Sync and the writes since; found is false when it
// holds none or has not synced.
func (d *Driver) Programmed(table uint32, prefix netip.Prefix) (r Route, found bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.synced {
		return Route{}, false
	}
	r, found = d.cache[Route{Table: table, Prefix: prefix}.key()]
	return r, found
}

// Routes lists the routes VPP holds for the driver's source, in every
// table, without changing anything: what a restarted agent reads to
// recover state it lost before its first Sync. A VPP that does not know
// the source yet holds none of its routes.
func (d *Driver) Routes(ctx context.Context) ([]Route, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	src, found, err := d.findSource(ctx)
	if err != nil || !found {
		return nil, err
	}
	tables, err := d.dumpTables(ctx)
	if err != nil {
		return nil, err
	}
	var out []Route
	for k := range tables {
		routes, err := d.routes(ctx, k, src)
		if err != nil {
			return nil, err
		}
		out = append(out, routes...)
	}
	return out, nil
}

// findSource looks the driver's FIB source up by name; VPP may hold the
// name twice after a race, and the lowest ID is the one in use.
func (d *Driver) findSource(ctx context.Context) (id uint8, found bool, err error) {
	stream, err := d.fib.FibSourceDump(ctx, &fib.FibSourceDump{})
	if err != nil {
		return 0, false, fmt.Errorf("fib_source_dump: %w", err)
	}
	sources, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return 0, false, fmt.Errorf("fib_source_dump: %w", err)
	}
	for _, det := range sources {
		if det.Src.Name == d.source && (!found || det.Src.ID < id) {
			found, id = true, det.Src.ID
		}
	}
	return id, found, nil
}
