package acl

import "slices"

// Diff is what Update must be given to go from old to new: the
// ACLs new has and old lacks, and the bindings that differ (an interface
// old bound and new does not gets an empty binding).
func Diff(old, new Desired) ([]ACL, []Binding) {
	had := map[string]bool{}
	for _, t := range old.ACLs {
		had[t.Tag] = true
	}
	var acls []ACL
	for _, t := range new.ACLs {
		if !had[t.Tag] {
			acls = append(acls, t)
		}
	}
	was := map[uint32]Binding{}
	for _, b := range old.Bindings {
		was[b.SwIfIndex] = b
	}
	var bindings []Binding
	for _, b := range new.Bindings {
		o, ok := was[b.SwIfIndex]
		delete(was, b.SwIfIndex)
		if !ok || !slices.Equal(o.Input, b.Input) || !slices.Equal(o.Output, b.Output) {
			bindings = append(bindings, b)
		}
	}
	for idx := range was {
		bindings = append(bindings, Binding{SwIfIndex: idx})
	}
	slices.SortFunc(bindings, func(a, b Binding) int { return int(a.SwIfIndex) - int(b.SwIfIndex) })
	return acls, bindings
}
