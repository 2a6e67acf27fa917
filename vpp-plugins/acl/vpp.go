package acl

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.fd.io/govpp/api"
	vppacl "go.fd.io/govpp/binapi/acl"
	"go.fd.io/govpp/binapi/interface_types"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// dumpACLs fills d.acls and d.tags from acl_dump ~0. When two ACLs carry
// one kube-vpp tag, the lowest index is the ACL of that tag and the other
// is stale. d.mu is held.
func (d *Driver) dumpACLs(ctx context.Context) error {
	stream, err := d.rpc.ACLDump(ctx, &vppacl.ACLDump{ACLIndex: noIndex})
	if err != nil {
		return fmt.Errorf("acl_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return fmt.Errorf("acl_dump: %w", err)
	}
	d.acls, d.tags = map[string]*table{}, map[uint32]string{}
	for _, a := range list {
		if tag.Kind(a.Tag) != KindTable {
			continue
		}
		d.tags[a.ACLIndex] = a.Tag
		if cur := d.acls[a.Tag]; cur != nil && cur.index < a.ACLIndex {
			continue
		}
		rules, plain := decodeRules(a.R)
		d.acls[a.Tag] = &table{index: a.ACLIndex, rules: rules, plain: plain}
	}
	return nil
}

// dumpLists reads the lists of one interface, or of all with noIndex
// (acl_interface_list_dump; an interface VPP does not have is absent).
func (d *Driver) dumpLists(ctx context.Context, swIfIndex uint32) (map[uint32]lists, error) {
	stream, err := d.rpc.ACLInterfaceListDump(ctx, &vppacl.ACLInterfaceListDump{SwIfIndex: interface_types.InterfaceIndex(swIfIndex)})
	if err != nil {
		return nil, fmt.Errorf("acl_interface_list_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("acl_interface_list_dump: %w", err)
	}
	out := make(map[uint32]lists, len(list))
	for _, l := range list {
		n := min(int(l.NInput), len(l.Acls))
		out[uint32(l.SwIfIndex)] = lists{input: slices.Clone(l.Acls[:n]), output: slices.Clone(l.Acls[n:])}
	}
	return out, nil
}

// record notes that VPP holds l on the interface. d.mu is held.
func (d *Driver) record(swIfIndex uint32, l lists) {
	for _, idx := range d.ours(d.lists[swIfIndex]) {
		if u := d.users[idx]; u != nil {
			delete(u, swIfIndex)
			if len(u) == 0 {
				delete(d.users, idx)
			}
		}
	}
	delete(d.lists, swIfIndex)
	held := d.ours(l)
	for _, idx := range held {
		if d.users[idx] == nil {
			d.users[idx] = map[uint32]bool{}
		}
		d.users[idx][swIfIndex] = true
	}
	if len(held) > 0 {
		d.lists[swIfIndex] = l
	}
}

// ours are the kube-vpp ACLs in l.
func (d *Driver) ours(l lists) []uint32 {
	var out []uint32
	for _, idx := range slices.Concat(l.input, l.output) {
		if _, ok := d.tags[idx]; ok {
			out = append(out, idx)
		}
	}
	return out
}

// program makes VPP hold each of acls, with the fewest writes: nothing
// for an ACL VPP holds as wanted, a replace in place for one whose rules
// differ. Replacing keeps the sessions of every interface using the ACL
// (VPP's reclassify_sessions is off): connections already passing keep
// passing even if the new rules deny them. It returns the tags that VPP
// refused. d.mu is held.
func (d *Driver) program(ctx context.Context, acls []ACL, errs *[]error) (failed map[string]bool) {
	failed = map[string]bool{}
	for _, a := range acls {
		cur := d.acls[a.Tag]
		if cur != nil && cur.holds(a.Rules) {
			continue
		}
		idx, verb := noIndex, "adding"
		if cur != nil {
			idx, verb = cur.index, fmt.Sprintf("replacing the rules of acl_index %d", cur.index)
		}
		rep, err := d.rpc.ACLAddReplace(ctx, &vppacl.ACLAddReplace{ACLIndex: idx, Tag: a.Tag, R: encodeRules(a.Rules)})
		if err != nil {
			*errs = append(*errs, fmt.Errorf("acl %q: acl_add_replace %s: %w", a.Tag, verb, err))
			failed[a.Tag] = true
			continue
		}
		d.acls[a.Tag] = &table{index: rep.ACLIndex, rules: slices.Clone(a.Rules), plain: true}
		d.tags[rep.ACLIndex] = a.Tag
		msg := "added acl"
		if cur != nil {
			msg = "replaced acl rules"
		}
		d.log.Info(msg, zap.String("tag", a.Tag), zap.Uint32("acl_index", rep.ACLIndex), zap.Int("rules", len(a.Rules)))
		if ce := d.log.Check(zap.DebugLevel, "acl rules"); ce != nil {
			ce.Write(zap.String("tag", a.Tag), zap.Stringers("rules", a.Rules))
		}
	}
	return failed
}

// apply sets the interface's lists to what b wants, in one
// acl_interface_set_acl_list when they differ from cur.
//
// Foreign ACLs keep their place at the front of each list, in their
// order, and kube-vpp's follow: the first matching rule of the whole list
// decides, so whatever an operator put there (a management permit, an
// anti-spoofing deny) keeps its precedence, and kube-vpp never reorders
// entries it does not own.
//
// VPP clears every session of the interface, both directions, when the
// set of ACLs in either list changes (acl_interface_set_inout_acl_list);
// a reorder of the same set keeps them. Tags are content hashes, so a
// table whose content changes comes as a new ACL; unless it took over the
// old one's index (reuse.go), its list changes here and the interface's
// connections lose their reflexive sessions: their next packets, replies
// included, are judged by the lists afresh. index gives each tag's
// acl_index. It returns the lists VPP holds after. d.mu is held.
func (d *Driver) apply(ctx context.Context, swIfIndex uint32, cur lists, b Binding, index func(tag string) uint32) (lists, error) {
	want := lists{input: d.compose(cur.input, b.Input, index), output: d.compose(cur.output, b.Output, index)}
	if slices.Equal(cur.input, want.input) && slices.Equal(cur.output, want.output) {
		return cur, nil
	}
	if n := len(want.input) + len(want.output); n > maxListLen {
		return cur, fmt.Errorf("binding of sw_if_index %d not applied: %d ACLs with the foreign ones, VPP takes at most %d",
			swIfIndex, n, maxListLen)
	}
	_, err := d.rpc.ACLInterfaceSetACLList(ctx, &vppacl.ACLInterfaceSetACLList{SwIfIndex: interface_types.InterfaceIndex(swIfIndex),
		NInput: uint8(len(want.input)), Acls: slices.Concat(want.input, want.output)})
	if err != nil {
		return cur, fmt.Errorf("sw_if_index %d: acl_interface_set_acl_list input %q output %q: %w", swIfIndex, b.Input, b.Output, err)
	}
	d.record(swIfIndex, want)
	d.log.Info("set acl lists", zap.Uint32("sw_if_index", swIfIndex),
		zap.Strings("input", b.Input), zap.Strings("output", b.Output),
		zap.Uint32s("input_acl_index", want.input), zap.Uint32s("output_acl_index", want.output))
	return want, nil
}

// compose is a list: the foreign entries of cur, then the ACLs of tags.
func (d *Driver) compose(cur []uint32, tags []string, index func(tag string) uint32) []uint32 {
	var out []uint32
	for _, idx := range cur {
		if _, ours := d.tags[idx]; !ours {
			out = append(out, idx)
		}
	}
	for _, t := range tags {
		out = append(out, index(t))
	}
	return out
}

// deleteUnused deletes each kube-vpp ACL of idxs that no list holds,
// except the ACL of a tag in keep. An ACL VPP no longer has is gone just
// as well. d.mu is held.
func (d *Driver) deleteUnused(ctx context.Context, idxs []uint32, keep map[string]bool) error {
	var errs []error
	for _, idx := range idxs {
		t, ours := d.tags[idx]
		if !ours || len(d.users[idx]) > 0 || (keep[t] && d.acls[t] != nil && d.acls[t].index == idx) {
			continue
		}
		_, err := d.rpc.ACLDel(ctx, &vppacl.ACLDel{ACLIndex: idx})
		if err != nil && !isRetval(err, api.NO_SUCH_ENTRY) {
			errs = append(errs, fmt.Errorf("acl %q: acl_del (acl_index %d): %w", t, idx, err))
			continue
		}
		delete(d.tags, idx)
		if cur := d.acls[t]; cur != nil && cur.index == idx {
			delete(d.acls, t)
		}
		d.log.Info("deleted acl", zap.String("tag", t), zap.Uint32("acl_index", idx))
	}
	return errors.Join(errs...)
}

func isRetval(err error, want api.VPPApiError) bool {
	var rv api.VPPApiError
	return errors.As(err, &rv) && rv == want
}
