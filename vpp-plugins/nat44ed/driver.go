// Package nat44ed is the driver for VPP's NAT44-ED plugin: the plugin's
// base configuration (Configure) and the services' out2in-only static and
// load-balanced mappings, owned by tag and diffed per service (Sync,
// Update).
package nat44ed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"go.fd.io/govpp/api"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// Driver is the only code that sends VPP's NAT44-ED messages.
type Driver struct {
	rpc nat.RPCService
	log *zap.Logger

	// mu serialises writers. have is every kube-vpp mapping VPP holds, as
	// of the last Sync and every write since; services indexes it, so
	// Update costs what one service has, whatever the number of services.
	mu       sync.Mutex
	synced   bool
	have     map[Key]*entry
	services map[string]map[Key]bool
	// attached are interfaces given roles by Attach that no Configure has
	// listed yet: Configure keeps their roles (see Attach).
	attached map[uint32]bool
}

// entry is one mapping VPP holds.
type entry struct {
	m Mapping
	// service owns the mapping; "" for one no service wants whose
	// delete failed: the next Sync deletes it, or the next Update of a
	// service that wants its key takes it over.
	service string
	// shape is how VPP holds it (flags, table); a mapping of another
	// shape than kube-vpp programs differs from every wanted one.
	shape shape
}

// ErrNotSynced is returned by Update before a Sync has succeeded on the
// current VPP connection.
var ErrNotSynced = errors.New("nat44ed driver has not synced with VPP yet")

// New returns a driver sending on conn.
func New(conn api.Connection, log *zap.Logger) *Driver {
	return &Driver{rpc: nat.NewServiceClient(conn), log: log.Named("nat44ed")}
}

// Messages lists every message the driver sends or expects, for the
// compatibility check at connect.
func Messages() []api.Message {
	return []api.Message{
		&nat.Nat44EdPluginEnableDisable{}, &nat.Nat44EdPluginEnableDisableReply{},
		&nat.Nat44ShowRunningConfig{}, &nat.Nat44ShowRunningConfigReply{},
		&nat.Nat44ForwardingEnableDisable{}, &nat.Nat44ForwardingEnableDisableReply{},
		&nat.Nat44InterfaceDump{}, &nat.Nat44InterfaceDetails{},
		&nat.Nat44InterfaceAddDelFeature{}, &nat.Nat44InterfaceAddDelFeatureReply{},
		&nat.Nat44AddressDump{}, &nat.Nat44AddressDetails{},
		&nat.Nat44AddDelAddressRange{}, &nat.Nat44AddDelAddressRangeReply{},
		&nat.Nat44StaticMappingDump{}, &nat.Nat44StaticMappingDetails{},
		&nat.Nat44AddDelStaticMappingV2{}, &nat.Nat44AddDelStaticMappingV2Reply{},
		&nat.Nat44LbStaticMappingDump{}, &nat.Nat44LbStaticMappingDetails{},
		&nat.Nat44AddDelLbStaticMapping{}, &nat.Nat44AddDelLbStaticMappingReply{},
		&nat.Nat44LbStaticMappingAddDelLocal{}, &nat.Nat44LbStaticMappingAddDelLocalReply{},
		&nat.Nat44IdentityMappingDump{}, &nat.Nat44IdentityMappingDetails{},
		&nat.Nat44AddDelIdentityMapping{}, &nat.Nat44AddDelIdentityMappingReply{},
		&nat.Nat44UserDump{}, &nat.Nat44UserDetails{},
		&nat.Nat44UserSessionV3Dump{}, &nat.Nat44UserSessionV3Details{},
	}
}

// Invalidate forgets what the driver believes VPP holds; call it when VPP
// reconnects, then Configure and Sync.
func (d *Driver) Invalidate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetAll()
}

func (d *Driver) forgetAll() { d.synced, d.have, d.services = false, nil, nil }

// Sync makes the kube-vpp mappings in VPP (tag kind KindService) exactly
// the union of all, keyed by service ("namespace/name"). Mappings with
// other tags are left alone. A mapping that is invalid, or whose key
// another service or a foreign mapping holds, is reported and skipped
// (what VPP has at its key stays); the others are programmed.
func (d *Driver) Sync(ctx context.Context, all map[string][]Mapping) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetAll()
	have, foreign, err := d.dump(ctx)
	if err != nil {
		return err
	}
	d.have, d.services = have, map[string]map[Key]bool{}

	var errs []error
	want := map[Key]string{} // key -> service
	keep := map[Key]string{} // keys of invalid mappings: VPP's mapping stays
	byService := map[string][]Mapping{}
	for _, svc := range slices.Sorted(maps.Keys(all)) {
		good, kept, err := validate(svc, all[svc], func(k Key) string { return want[k] })
		errs = append(errs, err)
		for _, m := range good {
			want[m.Key()] = svc
		}
		for _, k := range kept {
			keep[k] = svc
		}
		byService[svc] = good
	}

	// Stale mappings go first, so a key moving between services is free.
	for _, k := range sortedKeys(have) {
		if _, ok := want[k]; ok {
			continue
		}
		if svc, ok := keep[k]; ok {
			d.own(have[k], svc)
			continue
		}
		errs = append(errs, d.remove(ctx, have[k]))
	}
	for _, svc := range slices.Sorted(maps.Keys(byService)) {
		for _, m := range byService[svc] {
			if t, ok := foreign[m.Key()]; ok {
				errs = append(errs, fmt.Errorf("service %s: mapping %s (%s): key held by a mapping kube-vpp does not own (tag %q)", svc, m.Key(), m.Tag, t))
				continue
			}
			if cur := d.have[m.Key()]; cur != nil && cur.m.Tag == m.Tag {
				// VPP does not report the affinity; the tag carries it.
				cur.m.Affinity = m.Affinity
			}
			errs = append(errs, d.set(ctx, svc, m))
		}
	}
	d.synced = true
	return errors.Join(errs...)
}

// Update replaces one service's mappings; nil or empty removes them. It
// costs what that service has, whatever the number of services: it relies
// on what the last Sync found, so it returns ErrNotSynced until one
// succeeded on this connection. On failure the driver still knows exactly
// what VPP holds, and the next Update or Sync retries what is missing.
func (d *Driver) Update(ctx context.Context, service string, mappings []Mapping) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.synced {
		return ErrNotSynced
	}
	good, kept, err := validate(service, mappings, func(k Key) string {
		if e := d.have[k]; e != nil && e.service != service {
			return e.service
		}
		return ""
	})
	errs := []error{err}
	wanted := map[Key]bool{}
	for _, m := range good {
		wanted[m.Key()] = true
	}
	for _, k := range kept {
		wanted[k] = true
	}
	for _, k := range sortedKeys(d.services[service]) {
		if !wanted[k] {
			errs = append(errs, d.remove(ctx, d.have[k]))
		}
	}
	for _, m := range good {
		errs = append(errs, d.set(ctx, service, m))
	}
	return errors.Join(errs...)
}

// Programmed returns the mappings VPP holds for service as far as the
// driver knows (nil when none or not synced), sorted by key.
func (d *Driver) Programmed(service string) []Mapping {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Mapping
	for k := range d.services[service] {
		out = append(out, d.have[k].m.clone())
	}
	slices.SortFunc(out, func(a, b Mapping) int { return compareKeys(a.Key(), b.Key()) })
	return out
}

// validate checks one service's mappings: a valid one whose key no other
// mapping of the service and no other service (heldBy) claims is good;
// the keys of the others are kept as VPP has them, so a bad update does
// not remove a working mapping. Errors name the service and the mapping.
func validate(service string, ms []Mapping, heldBy func(Key) string) (good []Mapping, kept []Key, _ error) {
	if service == "" && len(ms) > 0 {
		return nil, nil, fmt.Errorf("%d mappings of a service with no name", len(ms))
	}
	var errs []error
	seen := map[Key]bool{}
	for _, m := range ms {
		k := m.Key()
		err := m.Validate()
		switch {
		case err != nil:
		case tag.Kind(m.Tag) != KindService || len(m.Tag) > tag.MaxLen:
			err = fmt.Errorf("mapping %s: tag %q is not a kube-vpp service tag of at most %d bytes", k, m.Tag, tag.MaxLen)
		case seen[k]:
			err = fmt.Errorf("mapping %s (%s): key listed twice", k, m.Tag)
		case heldBy(k) != "":
			err = fmt.Errorf("mapping %s (%s): key held by service %s", k, m.Tag, heldBy(k))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", service, err))
			if !seen[k] && heldBy(k) == "" {
				kept = append(kept, k)
			}
			continue
		}
		seen[k] = true
		good = append(good, m.clone())
	}
	slices.SortFunc(good, func(a, b Mapping) int { return compareKeys(a.Key(), b.Key()) })
	return good, kept, errors.Join(errs...)
}

// set makes VPP hold want for service at want's key, in the fewest writes
// that keep traffic flowing: nothing when it already does, only the
// locals that change for a load-balanced mapping that otherwise stays,
// delete then add for anything else. d.mu is held.
func (d *Driver) set(ctx context.Context, service string, want Mapping) error {
	cur := d.have[want.Key()]
	switch {
	case cur == nil:
		return d.add(ctx, service, want)
	case cur.same(want):
		d.own(cur, service)
		return nil
	case cur.localsOnly(want):
		return d.updateLocals(ctx, service, cur, want)
	}
	if err := d.remove(ctx, cur); err != nil {
		return err
	}
	return d.add(ctx, service, want)
}

// own records that service owns e; d.mu is held.
func (d *Driver) own(e *entry, service string) {
	k := e.m.Key()
	if e.service != "" && e.service != service {
		d.unindex(e.service, k)
	}
	e.service = service
	if service == "" {
		return
	}
	if d.services[service] == nil {
		d.services[service] = map[Key]bool{}
	}
	d.services[service][k] = true
}

// forget drops e after VPP removed it; d.mu is held.
func (d *Driver) forget(e *entry) {
	k := e.m.Key()
	delete(d.have, k)
	d.unindex(e.service, k)
}

func (d *Driver) unindex(service string, k Key) {
	if s := d.services[service]; s != nil {
		delete(s, k)
		if len(s) == 0 {
			delete(d.services, service)
		}
	}
}

func (m Mapping) clone() Mapping {
	m.Locals = slices.Clone(m.Locals)
	return m
}

func compareKeys(a, b Key) int {
	if c := a.External.Compare(b.External); c != 0 {
		return c
	}
	return cmp.Compare(a.Protocol, b.Protocol)
}

func sortedKeys[V any](m map[Key]V) []Key {
	return slices.SortedFunc(maps.Keys(m), compareKeys)
}
