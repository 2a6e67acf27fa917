package acl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"go.fd.io/govpp/api"
	vppacl "go.fd.io/govpp/binapi/acl"
	"go.uber.org/zap"
)

// noIndex is ~0: "a new ACL" for acl_add_replace, "all" for the dumps.
const noIndex = ^uint32(0)

// Driver is the only code that sends VPP's ACL plugin messages.
type Driver struct {
	rpc vppacl.RPCService
	log *zap.Logger

	// mu serialises writers. What follows is what VPP holds of kube-vpp's
	// ACLs, as of the last Sync and every write since, so Update costs
	// what it is given, whatever the number of ACLs and interfaces.
	mu     sync.Mutex
	synced bool
	// acls are kube-vpp's ACLs by tag. tags names every kube-vpp
	// acl_index, also a second ACL with a tag acls already holds (stale:
	// Sync takes it out of the lists and deletes it).
	acls map[string]*table
	tags map[uint32]string
	// lists are the lists, foreign entries included, of each interface
	// that holds a kube-vpp ACL; users is the reverse: for each kube-vpp
	// acl_index, the interfaces whose lists hold it.
	lists map[uint32]lists
	users map[uint32]map[uint32]bool
}

// table is one kube-vpp ACL VPP holds.
type table struct {
	index uint32
	rules []Rule
	// plain is false when VPP holds something kube-vpp never writes (TCP
	// flags, an unknown action) in a rule: it then equals no wanted ACL.
	plain bool
}

func (t *table) holds(rules []Rule) bool { return t.plain && slices.Equal(t.rules, rules) }

// lists are an interface's input and output lists, as acl_index values.
type lists struct{ input, output []uint32 }

// ErrNotSynced is returned by Update before a Sync has succeeded on the
// current VPP connection.
var ErrNotSynced = errors.New("acl driver has not synced with VPP yet")

// New returns a driver sending on conn.
func New(conn api.Connection, log *zap.Logger) *Driver {
	return &Driver{rpc: vppacl.NewServiceClient(conn), log: log.Named("acl")}
}

// Messages lists every message the driver sends or expects, for the
// compatibility check at connect.
func Messages() []api.Message {
	return []api.Message{
		&vppacl.ACLAddReplace{}, &vppacl.ACLAddReplaceReply{},
		&vppacl.ACLDel{}, &vppacl.ACLDelReply{},
		&vppacl.ACLDump{}, &vppacl.ACLDetails{},
		&vppacl.ACLInterfaceSetACLList{}, &vppacl.ACLInterfaceSetACLListReply{},
		&vppacl.ACLInterfaceListDump{}, &vppacl.ACLInterfaceListDetails{},
	}
}

// Invalidate forgets what the driver believes VPP holds; call it when VPP
// reconnects, then Sync.
func (d *Driver) Invalidate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetAll()
}

func (d *Driver) forgetAll() { d.synced, d.acls, d.tags, d.lists, d.users = false, nil, nil, nil, nil }

// Sync makes VPP hold exactly want. It dumps every ACL and every
// interface's lists; ACLs whose tag has kind KindTable are kube-vpp's, all
// others are foreign and never touched. First the wanted ACLs are created,
// or replaced in place where VPP holds the tag with other rules; then each
// interface whose lists change gets both lists in one
// acl_interface_set_acl_list; last, kube-vpp ACLs that are not wanted and
// no list holds any more are deleted (VPP refuses to delete an ACL in a
// list). A wanted ACL VPP lacks may instead take over, in place, an
// unwanted one whose interfaces want it where they hold the old one (see
// reuse.go): those interfaces keep their sessions and need no write.
// Foreign entries of a list stay at its front, kube-vpp's follow (see
// apply). Interfaces no binding names lose their kube-vpp ACLs. A wanted
// ACL stays even when no binding uses it.
//
// An invalid ACL is reported and not sent (what VPP holds under its tag
// stays); a binding that names an invalid, failed or unwanted ACL, or an
// interface bound twice, is reported and not applied, so no interface gets
// half of its tables. In sync, Sync sends no write.
func (d *Driver) Sync(ctx context.Context, want Desired) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetAll()
	if err := d.dumpACLs(ctx); err != nil {
		return err
	}
	ifaces, err := d.dumpLists(ctx, noIndex)
	if err != nil {
		return err
	}
	d.lists, d.users = map[uint32]lists{}, map[uint32]map[uint32]bool{}
	for idx, l := range ifaces {
		d.record(idx, l)
	}

	good, named, bad, err := validateACLs(want.ACLs)
	errs := []error{err}
	bound, skipped, err := checkBindings(want.Bindings, func(t string) error {
		if !named[t] {
			return errors.New("is not among the wanted ACLs")
		}
		if bad[t] {
			return errors.New("is invalid")
		}
		return nil
	})
	errs = append(errs, err)

	all := maps.Clone(bound)
	for idx := range d.lists {
		if _, ok := all[idx]; !ok {
			all[idx] = Binding{SwIfIndex: idx}
		}
	}
	targets := map[uint32]*target{}
	for _, idx := range slices.Sorted(maps.Keys(all)) {
		if skipped[idx] {
			continue
		}
		b := all[idx]
		cur, exists := ifaces[idx]
		if !exists {
			if len(b.Input)+len(b.Output) > 0 {
				errs = append(errs, fmt.Errorf("binding of sw_if_index %d not applied: no such interface", idx))
			}
			continue
		}
		targets[idx] = &target{b: b, cur: cur}
	}
	errs = append(errs, d.reconcile(ctx, good, named, targets))
	errs = append(errs, d.deleteUnused(ctx, slices.Sorted(maps.Keys(d.tags)), named))
	d.synced = true
	return errors.Join(errs...)
}

// Update changes what differs from the driver's cache: it creates the
// given ACLs or replaces their rules by tag, sets the lists of the given
// bindings (a binding with no Input and no Output unbinds its interface),
// then deletes the kube-vpp ACLs those bindings released that no list
// holds any more. A given ACL VPP lacks may instead take over, in place,
// a released one whose interfaces want it where they hold the old one
// (see reuse.go): those interfaces keep their sessions and need no write.
// ACLs given here stay even when unbound. It reads VPP once per binding
// (that interface's lists) and writes only what changes: O(given +
// changed) whatever the number of ACLs and interfaces. It returns
// ErrNotSynced until a Sync succeeded on this connection. Bad ACLs and
// bindings are reported as Sync reports them; a binding may also name an
// ACL an earlier Sync or Update programmed.
func (d *Driver) Update(ctx context.Context, acls []ACL, bindings []Binding) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.synced {
		return ErrNotSynced
	}
	good, named, bad, err := validateACLs(acls)
	errs := []error{err}
	bound, _, err := checkBindings(bindings, func(t string) error {
		switch {
		case bad[t]:
			return errors.New("is invalid")
		case !named[t] && d.acls[t] == nil:
			return errors.New("does not exist")
		}
		return nil
	})
	errs = append(errs, err)

	keep := maps.Clone(named)
	for _, b := range bindings {
		for _, t := range slices.Concat(b.Input, b.Output) {
			keep[t] = true
		}
	}
	var released []uint32
	targets := map[uint32]*target{}
	for _, idx := range slices.Sorted(maps.Keys(bound)) {
		b := bound[idx]
		released = append(released, d.ours(d.lists[idx])...)
		// The cache cannot say what the interface holds: VPP empties the
		// lists of an interface it deletes and gives its index to the
		// next one (acl_sw_interface_add_del, pool reuse). One dump of
		// this interface tells.
		ifaces, err := d.dumpLists(ctx, idx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cur, exists := ifaces[idx]
		d.record(idx, cur)
		if !exists {
			if len(b.Input)+len(b.Output) > 0 {
				errs = append(errs, fmt.Errorf("binding of sw_if_index %d not applied: no such interface", idx))
			}
			continue
		}
		released = append(released, d.ours(cur)...)
		targets[idx] = &target{b: b, cur: cur}
	}
	errs = append(errs, d.reconcile(ctx, good, keep, targets))
	slices.Sort(released)
	errs = append(errs, d.deleteUnused(ctx, slices.Compact(released), named))
	return errors.Join(errs...)
}

// reconcile makes VPP hold acls and sets the lists of targets, in this
// order: new ACLs are created and changed ones replaced, except those
// taking over an old ACL in place; interfaces leaving such an old ACL
// are set, naming a new ACL that takes over an old one by the old index;
// the old ACLs are rewritten; the other interfaces are set, and those set
// early again if a rewrite fell back. keep holds every tag the call names
// (see planReuse). d.mu is held.
func (d *Driver) reconcile(ctx context.Context, acls []ACL, keep map[string]bool, targets map[uint32]*target) error {
	var fresh []ACL
	for _, a := range acls {
		if d.acls[a.Tag] == nil {
			fresh = append(fresh, a)
		}
	}
	reuses, early := d.planReuse(fresh, keep, targets)
	pending := map[string]uint32{}
	for _, r := range reuses {
		pending[r.acl.Tag] = r.index
	}
	var errs []error
	failed := d.program(ctx, slices.DeleteFunc(slices.Clone(acls), func(a ACL) bool { _, ok := pending[a.Tag]; return ok }), &errs)
	unset := map[uint32]bool{}
	for _, sw := range slices.Sorted(maps.Keys(early)) {
		if err := d.set(ctx, sw, targets[sw], failed, pending); err != nil {
			errs = append(errs, err)
			unset[sw] = true
		}
	}
	for _, r := range reuses {
		if !d.left(r, targets) {
			// A leaver still holds the old ACL: the new one is made apart.
			d.log.Debug("not rewriting acl in place: an interface leaving it was not set",
				zap.String("tag", r.acl.Tag), zap.String("old_tag", r.old), zap.Uint32("acl_index", r.index))
			maps.Copy(failed, d.program(ctx, []ACL{r.acl}, &errs))
			continue
		}
		if err := d.rewrite(ctx, r); err != nil {
			errs = append(errs, err)
			failed[r.acl.Tag] = true
		}
	}
	for _, sw := range slices.Sorted(maps.Keys(targets)) {
		if !unset[sw] {
			errs = append(errs, d.set(ctx, sw, targets[sw], failed, nil))
		}
	}
	return errors.Join(errs...)
}

// set applies t's binding unless it names an ACL that could not be
// programmed (the interface then keeps what it has), and notes what VPP
// holds after in t. Tags in pending are ACLs still to be rewritten in
// place, named by the index they will take. d.mu is held.
func (d *Driver) set(ctx context.Context, sw uint32, t *target, failed map[string]bool, pending map[string]uint32) error {
	for _, dir := range []struct {
		name string
		tags []string
	}{{"input", t.b.Input}, {"output", t.b.Output}} {
		for _, tg := range dir.tags {
			_, later := pending[tg]
			if failed[tg] || (d.acls[tg] == nil && !later) {
				return fmt.Errorf("binding not applied: sw_if_index %d: %s acl %q could not be programmed", sw, dir.name, tg)
			}
		}
	}
	cur, err := d.apply(ctx, sw, t.cur, t.b, func(tg string) uint32 {
		if idx, ok := pending[tg]; ok {
			return idx
		}
		return d.acls[tg].index
	})
	t.cur = cur
	return err
}

// Index returns the acl_index VPP holds the kube-vpp ACL tag under.
func (d *Driver) Index(tag string) (uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.acls[tag]; t != nil {
		return t.index, true
	}
	return 0, false
}

// Tag returns the tag of the kube-vpp ACL at index.
func (d *Driver) Tag(index uint32) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tags[index]
	return t, ok
}

// validateACLs splits acls into the valid ones, sorted by tag and without
// repeats, and the tags of the others. named holds every tag given.
func validateACLs(acls []ACL) (good []ACL, named, bad map[string]bool, _ error) {
	named, bad = map[string]bool{}, map[string]bool{}
	byTag := map[string]ACL{}
	var errs []error
	for _, a := range acls {
		named[a.Tag] = true
		if err := a.Validate(); err != nil {
			errs = append(errs, err)
			bad[a.Tag] = true
			continue
		}
		if prev, dup := byTag[a.Tag]; dup {
			if !slices.Equal(prev.Rules, a.Rules) && !bad[a.Tag] {
				errs = append(errs, fmt.Errorf("acl %q: given twice with different rules", a.Tag))
				bad[a.Tag] = true
			}
			continue
		}
		byTag[a.Tag] = a
	}
	for _, t := range slices.Sorted(maps.Keys(byTag)) {
		if !bad[t] {
			good = append(good, byTag[t])
		}
	}
	return good, named, bad, errors.Join(errs...)
}

// checkBindings returns the bindings that may be applied, by interface,
// and the interfaces whose binding may not (their lists stay as they are).
func checkBindings(bs []Binding, usable func(tag string) error) (ok map[uint32]Binding, skipped map[uint32]bool, _ error) {
	ok, skipped = map[uint32]Binding{}, map[uint32]bool{}
	count := map[uint32]int{}
	for _, b := range bs {
		count[b.SwIfIndex]++
	}
	var errs []error
	for _, b := range bs {
		if skipped[b.SwIfIndex] {
			continue
		}
		err := validateBinding(b)
		if count[b.SwIfIndex] > 1 {
			err = fmt.Errorf("sw_if_index %d: bound %d times", b.SwIfIndex, count[b.SwIfIndex])
		}
		for _, dir := range []struct {
			name string
			tags []string
		}{{"input", b.Input}, {"output", b.Output}} {
			for _, t := range dir.tags {
				if err != nil {
					break
				}
				if e := usable(t); e != nil {
					err = fmt.Errorf("sw_if_index %d: %s acl %q %w", b.SwIfIndex, dir.name, t, e)
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("binding not applied: %w", err))
			skipped[b.SwIfIndex] = true
			continue
		}
		ok[b.SwIfIndex] = b
	}
	return ok, skipped, errors.Join(errs...)
}
