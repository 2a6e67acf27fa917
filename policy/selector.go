package policy

import (
	"encoding/binary"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// selector is a parsed label selector. A nil *selector matches everything
// (a selector that was not given).
type selector struct {
	sel labels.Selector
	// key encodes the LabelSelector it was parsed from: equal keys, equal
	// selectors. Caches of what a selector selects use it.
	key string
	// exact are its Equals and In requirements: only objects whose label
	// key has one of values match, so an index by label answers them.
	exact []exactRequirement
}

type exactRequirement struct {
	key    string
	values []string
}

func (s *selector) matches(set labels.Set) bool {
	return s == nil || s.sel.Matches(set)
}

// parsedSelector is a selectorCache entry: the selector or why it is invalid.
type parsedSelector struct {
	sel *selector
	err error
}

// selectorCache parses each distinct LabelSelector once per Compile:
// policies are written from templates, and parsing validates every key and
// value (regular expressions), which dominated Compile.
type selectorCache struct {
	parsed map[string]parsedSelector
	buf    []byte // the key being looked up
}

func newSelectorCache() *selectorCache {
	return &selectorCache{parsed: map[string]parsedSelector{}}
}

// parse returns ls as a selector, as metav1.LabelSelectorAsSelector does.
func (c *selectorCache) parse(ls *metav1.LabelSelector) (*selector, error) {
	c.buf = appendSelectorKey(c.buf[:0], ls)
	if p, ok := c.parsed[string(c.buf)]; ok {
		return p.sel, p.err
	}
	key := string(c.buf)
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		c.parsed[key] = parsedSelector{err: err}
		return nil, err
	}
	s := &selector{sel: sel, key: key}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			s.exact = append(s.exact, exactRequirement{key: r.Key(), values: r.ValuesUnsorted()})
		}
	}
	c.parsed[key] = parsedSelector{sel: s}
	return s, nil
}

// appendSelectorKey appends an unambiguous encoding of ls to b: every
// string with its length. Match labels are sorted; expressions keep their
// order.
func appendSelectorKey(b []byte, ls *metav1.LabelSelector) []byte {
	if ls == nil {
		return append(b, "nil"...)
	}
	b = append(b, "sel"...)
	str := func(s string) { b = appendString(b, s) }
	b = binary.AppendUvarint(b, uint64(len(ls.MatchLabels)))
	var small [4]string // selectors rarely have more labels
	keys := small[:0]
	for k := range ls.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		str(k)
		str(ls.MatchLabels[k])
	}
	b = binary.AppendUvarint(b, uint64(len(ls.MatchExpressions)))
	for _, e := range ls.MatchExpressions {
		str(e.Key)
		str(string(e.Operator))
		b = binary.AppendUvarint(b, uint64(len(e.Values)))
		for _, v := range e.Values {
			str(v)
		}
	}
	return b
}

// appendString appends s with its length first, so that keys made of
// several strings cannot collide.
func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// podLabel is an entry of the cluster's label index.
type podLabel struct{ namespace, key, value string }

// podsMatching returns the pods of namespace ns that sel matches, in key
// order. The result may be the cluster's own slice: treat it as read-only.
func (c *cluster) podsMatching(ns string, sel *selector) []*pod {
	all := c.byNS[ns]
	if sel == nil {
		return all
	}
	// The exact requirement with the fewest candidates narrows the walk;
	// the selector is still evaluated on each candidate.
	candidates := all
	var lists [][]*pod
	for _, r := range sel.exact {
		lists = lists[:0]
		n := 0
		for _, v := range r.values {
			if l := c.byLabel[podLabel{ns, r.key, v}]; len(l) > 0 {
				lists = append(lists, l)
				n += len(l)
			}
		}
		if n < len(candidates) {
			candidates = merged(lists, n)
		}
		if len(candidates) == 0 {
			return nil
		}
	}
	var out []*pod
	for _, p := range candidates {
		if sel.sel.Matches(p.labels) {
			out = append(out, p)
		}
	}
	return out
}

// merged is the pods of lists (n in all, disjoint: one label key's values)
// in key order.
func merged(lists [][]*pod, n int) []*pod {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	out := make([]*pod, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortFunc(out, func(a, b *pod) int { return a.order - b.order })
	return out
}
