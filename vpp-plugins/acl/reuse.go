package acl

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	vppacl "go.fd.io/govpp/binapi/acl"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// Tags are content hashes, so a shared table whose peers change comes as a
// new ACL B while the old one, A, is about to go. Moving A's interfaces to
// a new index would change the set of ACLs in their lists, and VPP then
// clears every session of those interfaces
// (acl_interface_set_inout_acl_list -> acl_clear_sessions): established
// connections lose their reflexive sessions on unrelated pod churn.
// Replacing A's rules and tag in place (acl_add_replace on A's index)
// keeps them (reclassify_sessions is off), and its lists need no write.
//
// A is rewritten as B when:
//   - B is a valid ACL of this call that VPP does not hold by tag;
//   - A is a kube-vpp ACL, the one VPP holds under its tag, that the call
//     would delete: no given ACL or binding names its tag and every
//     interface holding it is set by this call;
//   - at least one of A's interfaces (a "stayer") wants B exactly in the
//     lists that hold A.
//
// The other interfaces holding A ("leavers") are set before the rewrite,
// so none ever applies B where it does not want it; those that want B
// where they did not hold A ("takers") are set after, so none ever
// applies A where it wants B. An interface that would be both, for one or
// two rewrites, makes the less preferred rewrite fall back. Candidates
// for one A (or one B) are ranked: the same tag kind (the key up to its
// last '-', e.g. "ingress"), then the most stayers, then the lowest new
// tag, then the lowest index. A leaver whose lists VPP would not set
// keeps A, so A is then not rewritten: B is created apart. Everything else
// takes the create, rebind, delete path, where a rebound interface loses
// its sessions. One cost: a stayer that also changes elsewhere and whose
// lists VPP refuses holds B in A's place and its other ACLs as they were
// (reported, like any refused binding; the next call sets it).

// reuse is an old ACL rewritten in place as a new one.
type reuse struct {
	acl   ACL    // the new ACL
	index uint32 // the old ACL's acl_index
	old   string // the old ACL's tag
}

// target is an interface whose lists a call sets to a binding.
type target struct {
	b   Binding
	cur lists // as VPP holds them
}

// planReuse picks the old ACLs to rewrite as the fresh ones (valid, not in
// VPP by tag) and the interfaces to set before the rewrites. keep holds
// every tag the call names. d.mu is held.
func (d *Driver) planReuse(fresh []ACL, keep map[string]bool, targets map[uint32]*target) (reuses []reuse, early map[uint32]bool) {
	if len(fresh) == 0 {
		return nil, nil
	}
	byTag := make(map[string]ACL, len(fresh))
	for _, a := range fresh {
		byTag[a.Tag] = a
	}
	type candidate struct {
		index    uint32
		old, new string
		stayers  int
	}
	var cands []candidate
	seen := map[uint32]bool{}
	for _, sw := range slices.Sorted(maps.Keys(targets)) {
		for _, idx := range d.ours(targets[sw].cur) {
			if seen[idx] {
				continue
			}
			seen[idx] = true
			old := d.tags[idx]
			if keep[old] || d.acls[old] == nil || d.acls[old].index != idx {
				continue
			}
			votes, ok := map[string]int{}, true
			for holder := range d.users[idx] {
				t, set := targets[holder]
				if !set {
					ok = false // it keeps A: A stays
					break
				}
				for _, n := range t.inPlace(idx, byTag) {
					votes[n]++
				}
			}
			if !ok {
				continue
			}
			for n, v := range votes {
				cands = append(cands, candidate{idx, old, n, v})
			}
		}
	}
	slices.SortFunc(cands, func(x, y candidate) int {
		return cmp.Or(
			-cmp.Compare(b2i(tableKind(x.old) == tableKind(x.new)), b2i(tableKind(y.old) == tableKind(y.new))),
			-cmp.Compare(x.stayers, y.stayers),
			strings.Compare(x.new, y.new),
			cmp.Compare(x.index, y.index),
		)
	})
	usedIdx, usedTag := map[uint32]bool{}, map[string]bool{}
	for _, c := range cands {
		if usedIdx[c.index] || usedTag[c.new] {
			continue
		}
		usedIdx[c.index], usedTag[c.new] = true, true
		reuses = append(reuses, reuse{acl: byTag[c.new], index: c.index, old: c.old})
	}
	for {
		var drop int
		early, drop = order(reuses, targets)
		if drop < 0 {
			break
		}
		reuses = slices.Delete(reuses, drop, drop+1)
	}
	slices.SortFunc(reuses, func(x, y reuse) int { return cmp.Compare(x.index, y.index) })
	return reuses, early
}

// inPlace are the fresh tags t wants exactly in the lists that hold idx.
func (t *target) inPlace(idx uint32, fresh map[string]ACL) []string {
	var out []string
	for _, n := range slices.Concat(t.b.Input, t.b.Output) {
		if _, ok := fresh[n]; ok && !slices.Contains(out, n) && t.stays(idx, n) {
			out = append(out, n)
		}
	}
	return out
}

// stays says whether the interface wants tag in each list that holds idx
// and in no other.
func (t *target) stays(idx uint32, tag string) bool {
	return slices.Contains(t.cur.input, idx) == slices.Contains(t.b.Input, tag) &&
		slices.Contains(t.cur.output, idx) == slices.Contains(t.b.Output, tag)
}

// order returns the interfaces that leave an ACL of rs (they are set
// before the rewrites), and the position in rs, ranked best first, of a
// rewrite to give up because one interface would also take a rewritten
// index where it held none (it must be set after); -1 when there is none.
func order(rs []reuse, targets map[uint32]*target) (early map[uint32]bool, drop int) {
	byIdx, byTag := map[uint32]int{}, map[string]int{}
	for i, r := range rs {
		byIdx[r.index], byTag[r.acl.Tag] = i, i
	}
	early, drop = map[uint32]bool{}, -1
	for _, sw := range slices.Sorted(maps.Keys(targets)) {
		t := targets[sw]
		leaves, takes := -1, -1
		for _, dir := range []struct {
			cur  []uint32
			want []string
		}{{t.cur.input, t.b.Input}, {t.cur.output, t.b.Output}} {
			for _, idx := range dir.cur {
				if i, ok := byIdx[idx]; ok && !slices.Contains(dir.want, rs[i].acl.Tag) {
					leaves = max(leaves, i)
				}
			}
			for _, n := range dir.want {
				if i, ok := byTag[n]; ok && !slices.Contains(dir.cur, rs[i].index) {
					takes = max(takes, i)
				}
			}
		}
		if leaves >= 0 && takes >= 0 {
			return nil, max(leaves, takes)
		}
		if leaves >= 0 {
			early[sw] = true
		}
	}
	return early, -1
}

// left says whether every interface still holding r's old ACL wants r's
// new one in its place: a leaver whose lists could not be set keeps the
// old ACL, and then r must not happen. d.mu is held.
func (d *Driver) left(r reuse, targets map[uint32]*target) bool {
	for holder := range d.users[r.index] {
		t, ok := targets[holder]
		if !ok || !t.stays(r.index, r.acl.Tag) {
			return false
		}
	}
	return true
}

// rewrite replaces the old ACL's rules and tag with the new one's, keeping
// its index, so that the lists holding it keep their sessions. d.mu is
// held.
func (d *Driver) rewrite(ctx context.Context, r reuse) error {
	_, err := d.rpc.ACLAddReplace(ctx, &vppacl.ACLAddReplace{ACLIndex: r.index, Tag: r.acl.Tag, R: encodeRules(r.acl.Rules)})
	if err != nil {
		return fmt.Errorf("acl %q: acl_add_replace rewriting acl %q (acl_index %d) in place: %w", r.acl.Tag, r.old, r.index, err)
	}
	delete(d.acls, r.old)
	d.acls[r.acl.Tag] = &table{index: r.index, rules: slices.Clone(r.acl.Rules), plain: true}
	d.tags[r.index] = r.acl.Tag
	d.log.Info("rewrote acl in place", zap.String("tag", r.acl.Tag), zap.String("old_tag", r.old),
		zap.Uint32("acl_index", r.index), zap.Int("interfaces", len(d.users[r.index])), zap.Int("rules", len(r.acl.Rules)))
	if ce := d.log.Check(zap.DebugLevel, "acl rules"); ce != nil {
		ce.Write(zap.String("tag", r.acl.Tag), zap.Stringers("rules", r.acl.Rules))
	}
	return nil
}

// tableKind is a table tag's key up to its last '-': the direction of
// kube-vpp's "<direction>-<content hash>" keys.
func tableKind(t string) string {
	key := strings.TrimPrefix(t, tag.Prefix+KindTable+":")
	if i := strings.LastIndexByte(key, '-'); i >= 0 {
		return key[:i]
	}
	return ""
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
