package policy

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
)

// frontend is one service address:port/protocol with all its backends.
type frontend struct {
	addr     netip.Addr
	port     uint16
	proto    uint8
	service  string
	backends []netip.AddrPort
}

// frontendIndex holds the frontends sorted by address, and their lowest
// backends sorted by address, so that the frontends an allow list may open
// or must deny are found by a binary search per peer prefix rather than a
// walk over every service of the cluster for every egress table.
type frontendIndex struct {
	list      []frontend
	byBackend []backendRef
}

type backendRef struct {
	addr     netip.Addr
	frontend int
}

func newFrontendIndex(in []Frontend) frontendIndex {
	x := frontendIndex{list: mergeFrontends(in)}
	x.byBackend = make([]backendRef, 0, len(x.list))
	for i, f := range x.list {
		x.byBackend = append(x.byBackend, backendRef{addr: f.backends[0].Addr(), frontend: i})
	}
	slices.SortFunc(x.byBackend, func(a, b backendRef) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.frontend, b.frontend))
	})
	return x
}

// candidates returns, in order, the indexes of the frontends whose VIP or
// lowest backend is inside the peers of one of allow: a frontend is opened
// only if all its backends are allowed, and denied only if its VIP is.
func (x frontendIndex) candidates(allow []Rule) []int {
	var found []int
	for _, r := range allow {
		if len(r.Peers) == 0 {
			all := make([]int, len(x.list))
			for i := range all {
				all[i] = i
			}
			return all
		}
		for _, peer := range r.Peers {
			peer = peer.Masked()
			i, _ := slices.BinarySearchFunc(x.list, peer.Addr(), func(f frontend, a netip.Addr) int { return f.addr.Compare(a) })
			for ; i < len(x.list) && peer.Contains(x.list[i].addr); i++ {
				found = append(found, i)
			}
			j, _ := slices.BinarySearchFunc(x.byBackend, peer.Addr(), func(b backendRef, a netip.Addr) int { return b.addr.Compare(a) })
			for ; j < len(x.byBackend) && peer.Contains(x.byBackend[j].addr); j++ {
				found = append(found, x.byBackend[j].frontend)
			}
		}
	}
	slices.Sort(found)
	return slices.Compact(found)
}

// mergeFrontends drops frontends without an address or backends (there is
// nothing behind them to reach), merges those sharing address, port and
// protocol (the service first by name names them; all backends count), and
// sorts them.
func mergeFrontends(in []Frontend) []frontend {
	type key struct {
		addr  netip.Addr
		port  uint16
		proto uint8
	}
	byKey := map[key]*frontend{}
	for _, f := range in {
		if !f.Addr.Addr().IsValid() || len(f.Backends) == 0 {
			continue
		}
		k := key{f.Addr.Addr().Unmap(), f.Addr.Port(), f.Protocol}
		m, ok := byKey[k]
		if !ok {
			m = &frontend{addr: k.addr, port: k.port, proto: k.proto, service: f.Service}
			byKey[k] = m
		}
		if f.Service < m.service {
			m.service = f.Service
		}
		for _, b := range f.Backends {
			m.backends = append(m.backends, netip.AddrPortFrom(b.Addr().Unmap(), b.Port()))
		}
	}
	out := make([]frontend, 0, len(byKey))
	for _, m := range byKey {
		slices.SortFunc(m.backends, netip.AddrPort.Compare)
		m.backends = slices.Compact(m.backends)
		out = append(out, *m)
	}
	// Keys are unique: the order is total.
	slices.SortFunc(out, func(a, b frontend) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.port, b.port), cmp.Compare(a.proto, b.proto))
	})
	return out
}

// addFrontends adds to an egress table the VIP rules for allow: a
// permit+reflect for each frontend all of whose backends allow lets the pod
// reach (the input list sees the VIP, NAT picks the backend after it), and
// a deny for each other frontend that one of the allow rules would let
// through by its VIP alone. They come first: the first matching rule
// decides (public_inlines.h, single_acl_match_5tuple). candidates are the
// frontends allow may concern (frontendIndex.candidates).
func (p *placer) addFrontends(t *table, allow []Rule, candidates []int) {
	for _, i := range candidates {
		f := p.frontends.list[i]
		r := acl.Rule{Src: anyOf(f.addr), Dst: hostPrefix(f.addr), Protocol: f.proto,
			SrcPorts: acl.AnyPort, DstPorts: acl.PortRange{First: f.port, Last: f.port}}
		if f.proto == uint8(AnyProtocol) {
			r.DstPorts = acl.AnyPort
		}
		o := RuleOrigin{Direction: Egress, Index: -1, Note: NoteService + f.service}
		if j, ok := allowsBackends(allow, f); ok {
			r.Action = acl.PermitReflect
			o.Policy, o.Index = allow[j].Policy, allow[j].Index
			t.add(r, o, j)
			continue
		}
		if slices.ContainsFunc(allow, func(ar Rule) bool { return allows(ar, f.addr, f.port, f.proto) }) {
			r.Action = acl.Deny
			t.add(r, o, -1)
		}
	}
}

// allowsBackends reports whether every backend of f is allowed by one of
// allow, and returns the index of the rule allowing the first.
func allowsBackends(allow []Rule, f frontend) (first int, ok bool) {
	for i, b := range f.backends {
		j := slices.IndexFunc(allow, func(r Rule) bool { return allows(r, b.Addr(), b.Port(), f.proto) })
		if j < 0 {
			return 0, false
		}
		if i == 0 {
			first = j
		}
	}
	return first, true
}
