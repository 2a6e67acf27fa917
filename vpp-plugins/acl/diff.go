package acl

import "slices"

// Diff is what Update must be given to go from old to new: the
// ACLs new has and old lacks or holds with other rules, and the bindings
// that differ (an interface old bound and new does not gets an empty
// binding). Content tags make a tag with other rules unexpected, but
// Update replaces such an ACL in place only when it is given.
func Diff(old, new Desired) ([]ACL, []Binding) {
	had := make(map[string][]Rule, len(old.ACLs))
	for _, t := range old.ACLs {
		had[t.Tag] = t.Rules
	}
	var acls []ACL
	for _, t := range new.ACLs {
		if rules, ok := had[t.Tag]; !ok || !slices.Equal(rules, t.Rules) {
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
