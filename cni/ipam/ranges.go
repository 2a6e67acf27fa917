package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// SetRanges sets the node's pod ranges (Node.spec.podCIDRs): one per family,
// primary family first. Allocations outside new ranges stay recorded, since
// their pods still use them; OutsideRanges lists them. New allocations use
// the new ranges.
func (a *Allocator) SetRanges(podCIDRs []netip.Prefix) error {
	if len(podCIDRs) == 0 {
		return fmt.Errorf("node pod CIDRs: none given")
	}
	seen := map[family]netip.Prefix{}
	for _, p := range podCIDRs {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("node pod CIDR %s: %w", p, err)
		}
		f := familyOf(p.Addr())
		if prev, dup := seen[f]; dup {
			return fmt.Errorf("node pod CIDRs %s and %s are both %s; a node has at most one per family", prev, p, f)
		}
		seen[f] = p
		// Room for the network address, the gateway, one pod and, for IPv4, the broadcast address.
		maxBits := 30
		if f == ipv6 {
			maxBits = 126
		}
		if p.Bits() > maxBits {
			return fmt.Errorf("node pod CIDR %s is too small: an %s pod range needs a prefix length of at most /%d", p, f, maxBits)
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.Equal(a.ranges, podCIDRs) {
		return nil
	}
	old := a.ranges
	a.ranges = slices.Clone(podCIDRs)
	a.log.Info("IPAM pod ranges set", zap.Stringers("ranges", a.ranges), zap.Stringers("previous", old),
		zap.Int("allocationsOutside", len(a.outside())))
	return nil
}

// OutsideRanges returns the allocations holding an address outside the
// node's current pod ranges, sorted by container ID: pods started before the
// node's pod CIDRs changed.
func (a *Allocator) OutsideRanges() []Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.outside()
}

func (a *Allocator) outside() []Record {
	var out []Record
	for _, r := range a.records {
		for _, ip := range r.IPs {
			if !slices.ContainsFunc(a.ranges, func(p netip.Prefix) bool { return p.Contains(ip) }) {
				out = append(out, r.clone())
				break
			}
		}
	}
	sortRecords(out)
	return out
}

// SetPools replaces the namespace pools (namespace -> CIDRs). A namespace's
// pods draw only from its pool ranges, and only from the part inside the
// node's pod range of the same family; no other pod draws from them.
// Pools of different namespaces must not overlap, and each pool range must
// have a part inside this node's pod range of its family.
func (a *Allocator) SetPools(pools map[string][]netip.Prefix) error {
	namespaces := make([]string, 0, len(pools))
	for ns, ps := range pools {
		if len(ps) > 0 {
			namespaces = append(namespaces, ns)
		}
	}
	slices.Sort(namespaces)

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ranges) == 0 {
		return fmt.Errorf("namespace pools: %w", ErrNoRanges)
	}
	for _, ns := range namespaces {
		if ns == "" {
			return fmt.Errorf("namespace pools: a pool has an empty namespace name")
		}
		for _, p := range pools[ns] {
			if err := checkPrefix(p); err != nil {
				return &PoolError{Namespace: ns, Pool: p, Reason: err.Error()}
			}
			f := familyOf(p.Addr())
			r, ok := a.rangeOf(f)
			if !ok {
				return &PoolError{Namespace: ns, Pool: p, Reason: fmt.Sprintf("has no part inside this node's pod ranges: the node has no %s pod range", f)}
			}
			if _, ok := intersect(p, r); !ok {
				return &PoolError{Namespace: ns, Pool: p, Reason: fmt.Sprintf("has no part inside this node's %s pod range %s", f, r)}
			}
		}
	}
	for i, ns := range namespaces {
		for _, other := range namespaces[i+1:] {
			for _, p := range pools[ns] {
				for _, q := range pools[other] {
					if p.Overlaps(q) {
						return &PoolError{Namespace: ns, Pool: p, Reason: fmt.Sprintf("overlaps namespace %s pool %s", other, q)}
					}
				}
			}
		}
	}

	next := make(map[string][]netip.Prefix, len(namespaces))
	for _, ns := range namespaces {
		next[ns] = slices.Clone(pools[ns])
	}
	a.pools = next
	a.log.Info("IPAM namespace pools set", zap.Int("namespaces", len(next)))
	return nil
}

// checkPrefix rejects prefixes that are not a canonical network.
func checkPrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("is not a valid CIDR")
	case p.Addr().Is4In6():
		return fmt.Errorf("is IPv4-mapped IPv6; give it in IPv4 form")
	case p.Masked() != p:
		return fmt.Errorf("has host bits set; the network is %s", p.Masked())
	}
	return nil
}

func (a *Allocator) rangeOf(f family) (netip.Prefix, bool) {
	for _, r := range a.ranges {
		if familyOf(r.Addr()) == f {
			return r, true
		}
	}
	return netip.Prefix{}, false
}

// ownPool returns namespace's pool ranges of family f inside the node range
// r, and whether the namespace has a pool of that family at all. A namespace
// without a pool of a family draws that family from the default pool.
func (a *Allocator) ownPool(namespace string, f family, r netip.Prefix) (spans, []netip.Prefix, bool) {
	var mine, inside []netip.Prefix
	for _, p := range a.pools[namespace] {
		if familyOf(p.Addr()) != f {
			continue
		}
		mine = append(mine, p)
		if q, ok := intersect(p, r); ok {
			inside = append(inside, q)
		}
	}
	if len(mine) == 0 {
		return nil, nil, false
	}
	if len(inside) == 0 {
		return nil, mine, true
	}
	return spansOf(inside), mine, true
}

// poolOwner returns the namespace whose pool holds ip, and that pool range.
func (a *Allocator) poolOwner(ip netip.Addr) (string, netip.Prefix, bool) {
	for ns, ps := range a.pools {
		for _, p := range ps {
			if p.Contains(ip) {
				return ns, p, true
			}
		}
	}
	return "", netip.Prefix{}, false
}

// pick chooses the next free address for a pod of namespace from the node
// range r, round-robin after the last address picked from the same pool.
func (a *Allocator) pick(namespace string, r netip.Prefix) (netip.Addr, cursorKey, error) {
	f := familyOf(r.Addr())
	set, mine, pooled := a.ownPool(namespace, f, r)
	key := cursorKey{family: f}
	desc := fmt.Sprintf("this node's %s pod range %s", f, r)
	switch {
	case pooled && len(set) == 0:
		return netip.Addr{}, key, &PoolError{Namespace: namespace, Pool: mine[0],
			Reason: fmt.Sprintf("has no part inside this node's %s pod range %s", f, r)}
	case pooled:
		key.namespace = namespace
		desc = fmt.Sprintf("namespace %s pool %s inside %s", namespace, prefixList(mine), desc)
	default:
		var holes []netip.Prefix
		for _, ps := range a.pools {
			for _, p := range ps {
				if q, ok := intersect(p, r); ok {
					holes = append(holes, q)
				}
			}
		}
		set = spans{spanOf(r)}
		if len(holes) > 0 {
			set = set.minus(spansOf(holes))
			desc += " outside namespace pools"
		}
	}
	if len(set) > 0 {
		start := set.after(a.cursors[key])
		for ip := start; ; {
			if _, taken := a.owners[ip]; !taken && reservedReason(r, ip) == "" {
				return ip, key, nil
			}
			if ip = set.after(ip); ip == start {
				break
			}
		}
	}
	return netip.Addr{}, key, fmt.Errorf("%w in %s", ErrExhausted, desc)
}

// checkAddr says why ip may not be given to containerID of namespace, or nil.
func (a *Allocator) checkAddr(role, namespace, containerID string, ip netip.Addr) error {
	bad := func(reason string) error { return &AddressError{Role: role, Addr: ip, Reason: reason} }
	switch {
	case !ip.IsValid():
		return bad("is not a valid IP address")
	case ip.Is4In6():
		return bad("is IPv4-mapped IPv6; give it in IPv4 form")
	case ip.Zone() != "":
		return bad("has an IPv6 zone")
	}
	f := familyOf(ip)
	r, ok := a.rangeOf(f)
	if !ok {
		return bad(fmt.Sprintf("is %s but this node has no %s pod range", f, f))
	}
	if !r.Contains(ip) {
		return bad("is outside this node's pod range " + r.String())
	}
	if reason := reservedReason(r, ip); reason != "" {
		return bad(reason)
	}
	if set, mine, pooled := a.ownPool(namespace, f, r); pooled {
		if !set.contains(ip) {
			return bad(fmt.Sprintf("is outside namespace %s pool %s", namespace, prefixList(mine)))
		}
	} else if ns, p, ok := a.poolOwner(ip); ok {
		return bad(fmt.Sprintf("is inside namespace %s pool %s", ns, p))
	}
	if owner, taken := a.owners[ip]; taken && owner != containerID {
		o := a.records[owner]
		return &AddressError{Role: role, Addr: ip, Owner: owner,
			Reason: fmt.Sprintf("is already used by pod %s/%s (container %s)", o.Namespace, o.Pod, shortID(owner))}
	}
	return nil
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
