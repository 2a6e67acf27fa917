package policy

import (
	"fmt"
	"slices"
	"testing"
)

// Place keeps one table per distinct allow list, whether pods hand it the
// same slice (as Compile does for pods of the same policies) or equal
// copies; a list that is a prefix of another's slice is another list. Each
// rule names the first policy by name giving it, over every pod using the
// table (tables.go: "An ACL shared by pods of different policies names,
// per rule, the first policy by name that gives it").
func TestPlaceSharedAllowLists(t *testing.T) {
	web := allowRule("x/p", 0, TCP, 80, 80, "10.0.1.0/24")
	dns := allowRule("x/p", 1, UDP, 53, 53, "10.0.0.53/32")
	shared := []Rule{web, dns}
	renamed := func(r Rule) Rule { r.Policy = "x/a"; return r }
	in := PlaceInput{
		Rules: map[string]PodRules{
			"x/one":    podRules("x/one", Direction{Isolated: true, Allow: shared}, Direction{}, "x/p"),
			"x/two":    podRules("x/two", Direction{Isolated: true, Allow: shared}, Direction{}, "x/p"),
			"x/third":  podRules("x/third", isolatedBy(renamed(web), renamed(dns)), Direction{}, "x/a"),
			"x/prefix": podRules("x/prefix", Direction{Isolated: true, Allow: shared[:1]}, Direction{}, "x/p"),
		},
		Local: []LocalPod{
			{Pod: "x/one", SwIfIndexes: []uint32{1}}, {Pod: "x/two", SwIfIndexes: []uint32{2}},
			{Pod: "x/third", SwIfIndexes: []uint32{3}}, {Pod: "x/prefix", SwIfIndexes: []uint32{4}},
		},
	}
	got := Place(in)
	one, two, third, prefix := got.Tables["x/one"], got.Tables["x/two"], got.Tables["x/third"], got.Tables["x/prefix"]
	if one.Ingress == "" || one.Ingress != two.Ingress || one.Ingress != third.Ingress {
		t.Errorf("equal allow lists, ingress tables %q, %q, %q: want one", one.Ingress, two.Ingress, third.Ingress)
	}
	if prefix.Ingress == one.Ingress {
		t.Errorf("x/prefix allows less but shares table %q", one.Ingress)
	}
	if one.Egress == "" || one.Egress != prefix.Egress {
		t.Errorf("not isolated for egress: tables %q, %q, want the one open table", one.Egress, prefix.Egress)
	}
	wantOrigins := map[string][]string{
		one.Ingress:    {"x/a#0", "x/a#1"}, // x/a sorts before x/p
		prefix.Ingress: {"x/p#0"},
	}
	for tg, want := range wantOrigins {
		var policies []string
		for _, o := range got.Origins[tg] {
			if o.Policy != "" {
				policies = append(policies, fmt.Sprintf("%s#%d", o.Policy, o.Index))
			}
		}
		if !slices.Equal(policies, want) {
			t.Errorf("%s: rules from %q, want %q", tg, policies, want)
		}
	}
}
