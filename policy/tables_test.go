package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

type placeCase struct {
	name      string
	rules     []PodRules
	local     []LocalPod
	nodes     []netip.Addr
	frontends []Frontend
	want      map[uint32]bound // every binding
	acls      int              // distinct ACLs
	// tables: by pod, "" for no tables, "bound" for both set, or another
	// pod whose tables it shares.
	tables map[string]string
}

func (c placeCase) input() PlaceInput {
	in := PlaceInput{Rules: map[string]PodRules{}, Local: c.local, NodeAddresses: c.nodes, Frontends: c.frontends}
	for _, pr := range c.rules {
		in.Rules[pr.Pod] = pr
	}
	return in
}

func runPlaceCases(t *testing.T, cases []placeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.input()
			got := Place(in)
			bindings := checkPlacement(t, in, got)
			for sw, w := range c.want {
				g, ok := bindings[sw]
				if !ok {
					t.Errorf("interface %d: not bound", sw)
					continue
				}
				if !slices.Equal(g.input, w.input) {
					t.Errorf("interface %d input:\n got  %s\n want %s", sw, strings.Join(g.input, "\n      "), strings.Join(w.input, "\n      "))
				}
				if !slices.Equal(g.output, w.output) {
					t.Errorf("interface %d output:\n got  %s\n want %s", sw, strings.Join(g.output, "\n      "), strings.Join(w.output, "\n      "))
				}
			}
			for sw := range bindings {
				if _, ok := c.want[sw]; !ok {
					t.Errorf("interface %d: bound, want no lists", sw)
				}
			}
			if n := tableACLs(got.Desired); n != c.acls {
				t.Errorf("%d ACLs besides the firewall, want %d", n, c.acls)
			}
			for pod, w := range c.tables {
				g := got.Tables[pod]
				switch w {
				case "":
					if g.Ingress != "" || g.Egress != "" {
						t.Errorf("%s: tables %+v, want none", pod, g)
					}
				case "bound":
					if g.Ingress == "" || g.Egress == "" {
						t.Errorf("%s: tables %+v, want both set", pod, g)
					}
				default:
					if o := got.Tables[w]; g.Ingress == "" || g.Ingress != o.Ingress || g.Egress != o.Egress {
						t.Errorf("%s: tables %+v, want the same as %s's %+v", pod, g, w, o)
					}
				}
			}
		})
	}
}

func TestPlaceDirections(t *testing.T) {
	node := addrs("192.168.0.1")
	nodeRule := "permit+reflect 192.168.0.1/32 0.0.0.0/0 0 any any <- ingress node"
	runPlaceCases(t, []placeCase{
		{
			name:  "ingress only: output list, input made stateful",
			rules: []PodRules{podRules("x/a", isolatedBy(allowRule("x/p", 0, TCP, 80, 80, "10.0.1.20/32")), Direction{}, "x/p")},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}},
			nodes: node,
			want: map[uint32]bound{1: {
				input: openEgress,
				output: []string{
					"permit+reflect 10.0.1.20/32 0.0.0.0/0 6 any 80 <- ingress x/p#0",
					nodeRule,
					ndIngress,
				},
			}},
			acls: 2,
		},
		{
			name:  "egress only: input list, output made stateful",
			rules: []PodRules{podRules("x/a", Direction{}, isolatedBy(allowRule("x/p", 0, UDP, 53, 53, "10.0.2.0/24")), "x/p")},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}},
			nodes: node,
			want: map[uint32]bound{1: {
				input: []string{
					"permit+reflect 0.0.0.0/0 10.0.2.0/24 17 any 53 <- egress x/p#0",
					ndEgress,
				},
				output: openIngress,
			}},
			acls: 2,
		},
		{
			name: "both: ingress from anywhere on a range, egress denied",
			rules: []PodRules{podRules("x/a", isolatedBy(allowRule("x/p", 0, TCP, 80, 90)), isolatedBy(),
				"x/p")},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}},
			nodes: addrs("192.168.0.1", "fd00::1"),
			want: map[uint32]bound{1: {
				input: []string{ndEgress},
				output: []string{
					"permit+reflect 0.0.0.0/0 0.0.0.0/0 6 any 80-90 <- ingress x/p#0",
					"permit+reflect ::/0 ::/0 6 any 80-90 <- ingress x/p#0",
					nodeRule,
					"permit+reflect fd00::1/128 ::/0 0 any any <- ingress node",
					ndIngress,
				},
			}},
			acls: 2,
		},
		{
			name:  "node addresses: valid ones, unmapped, once, sorted",
			rules: []PodRules{podRules("x/a", isolatedBy(), Direction{}, "x/deny")},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}},
			nodes: append(addrs("fd00::1", "::ffff:192.168.0.1", "192.168.0.1"), netip.Addr{}),
			want: map[uint32]bound{1: {
				input: openEgress,
				output: []string{
					nodeRule,
					"permit+reflect fd00::1/128 ::/0 0 any any <- ingress node",
					ndIngress,
				},
			}},
			acls: 2,
		},
		{
			name: "IPv6 peers: one rule per family; the other family stays denied",
			rules: []PodRules{podRules("x/a",
				isolatedBy(allowRule("x/p", 0, UDP, 53, 53, "10.0.1.0/24", "fd00:1::/64")),
				isolatedBy(allowRule("x/p", 1, TCP, 443, 443, "fd00:2::/64")), "x/p")},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}},
			want: map[uint32]bound{1: {
				input: []string{
					"permit+reflect ::/0 fd00:2::/64 6 any 443 <- egress x/p#1",
					ndEgress,
				},
				output: []string{
					"permit+reflect 10.0.1.0/24 0.0.0.0/0 17 any 53 <- ingress x/p#0",
					"permit+reflect fd00:1::/64 ::/0 17 any 53 <- ingress x/p#0",
					ndIngress,
				},
			}},
			acls: 2,
		},
		{
			name: "protocols: any protocol, SCTP ports as given, ports without protocol",
			rules: []PodRules{podRules("x/a", isolatedBy(
				allowRule("x/p", 0, AnyProtocol, 0, 0, "10.0.1.0/24"),
				allowRule("x/p", 1, SCTP, 7000, 7000, "10.0.1.20/32"),
				allowRule("x/q", 0, AnyProtocol, 80, 80, "10.0.1.30/32"),
			), Direction{}, "x/p", "x/q")},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}},
			want: map[uint32]bound{1: {
				input: openEgress,
				output: []string{
					"permit+reflect 10.0.1.0/24 0.0.0.0/0 0 any any <- ingress x/p#0",
					"permit+reflect 10.0.1.20/32 0.0.0.0/0 132 any 7000 <- ingress x/p#1",
					"permit+reflect 10.0.1.30/32 0.0.0.0/0 6 any 80 <- ingress x/q#0",
					"permit+reflect 10.0.1.30/32 0.0.0.0/0 17 any 80 <- ingress x/q#0",
					"permit+reflect 10.0.1.30/32 0.0.0.0/0 132 any 80 <- ingress x/q#0",
					ndIngress,
				},
			}},
			acls: 2,
		},
	})
}

func TestPlaceBindings(t *testing.T) {
	in := isolatedBy(allowRule("x/p", 0, TCP, 80, 80, "10.0.1.20/32"))
	out := []string{"permit+reflect 10.0.1.20/32 0.0.0.0/0 6 any 80 <- ingress x/p#0", ndIngress}
	runPlaceCases(t, []placeCase{
		{
			name: "two pods with the same policies share their tables",
			rules: []PodRules{
				podRules("x/a", in, Direction{}, "x/p"),
				podRules("x/b", in, Direction{}, "x/p"),
			},
			local: []LocalPod{{Pod: "x/b", SwIfIndexes: []uint32{2}}, {Pod: "x/a", SwIfIndexes: []uint32{1}}},
			want:  map[uint32]bound{1: {input: openEgress, output: out}, 2: {input: openEgress, output: out}},
			acls:  2,
			tables: map[string]string{
				"x/a": "x/b",
			},
		},
		{
			name: "same content from another policy: one ACL, named by the first policy",
			rules: []PodRules{
				podRules("y/a", isolatedBy(allowRule("y/q", 3, TCP, 80, 80, "10.0.1.20/32")), Direction{}, "y/q"),
				podRules("x/a", in, Direction{}, "x/p"),
			},
			local: []LocalPod{{Pod: "y/a", SwIfIndexes: []uint32{2}}, {Pod: "x/a", SwIfIndexes: []uint32{1}}},
			want:  map[uint32]bound{1: {input: openEgress, output: out}, 2: {input: openEgress, output: out}},
			acls:  2,
			tables: map[string]string{
				"x/a": "y/a",
			},
		},
		{
			name: "same content, later pod by name has the first policy",
			rules: []PodRules{
				podRules("x/a", isolatedBy(allowRule("x/q", 3, TCP, 80, 80, "10.0.1.20/32")), Direction{}, "x/q"),
				podRules("x/b", in, Direction{}, "x/p"),
			},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}, {Pod: "x/b", SwIfIndexes: []uint32{2}}},
			want:  map[uint32]bound{1: {input: openEgress, output: out}, 2: {input: openEgress, output: out}},
			acls:  2,
		},
		{
			// The compiler's lists differ (one allow with two families, or
			// two allows) but the ACL rules are the same.
			name: "different allow lists making the same rules: one ACL",
			rules: []PodRules{
				podRules("x/a", isolatedBy(allowRule("x/q", 0, UDP, 53, 53, "10.0.1.0/24", "fd00::/64")), Direction{}, "x/q"),
				podRules("x/b", isolatedBy(
					allowRule("x/p", 0, UDP, 53, 53, "10.0.1.0/24"),
					allowRule("x/p", 1, UDP, 53, 53, "fd00::/64"),
				), Direction{}, "x/p"),
			},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}, {Pod: "x/b", SwIfIndexes: []uint32{2}}},
			want: map[uint32]bound{
				1: {input: openEgress, output: []string{
					"permit+reflect 10.0.1.0/24 0.0.0.0/0 17 any 53 <- ingress x/p#0",
					"permit+reflect fd00::/64 ::/0 17 any 53 <- ingress x/p#1",
					ndIngress,
				}},
				2: {input: openEgress, output: []string{
					"permit+reflect 10.0.1.0/24 0.0.0.0/0 17 any 53 <- ingress x/p#0",
					"permit+reflect fd00::/64 ::/0 17 any 53 <- ingress x/p#1",
					ndIngress,
				}},
			},
			acls: 2,
		},
		{
			name: "different allows: different tables",
			rules: []PodRules{
				podRules("x/a", in, Direction{}, "x/p"),
				podRules("x/b", isolatedBy(allowRule("x/p", 0, TCP, 81, 81, "10.0.1.20/32")), Direction{}, "x/p"),
			},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}, {Pod: "x/b", SwIfIndexes: []uint32{2}}},
			want: map[uint32]bound{
				1: {input: openEgress, output: out},
				2: {input: openEgress, output: []string{"permit+reflect 10.0.1.20/32 0.0.0.0/0 6 any 81 <- ingress x/p#0", ndIngress}},
			},
			acls: 3,
		},
		{
			name:  "a pod with two interfaces (memif and tap) has both bound",
			rules: []PodRules{podRules("x/a", in, Direction{}, "x/p")},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{7, 3, 7}}},
			want:  map[uint32]bound{3: {input: openEgress, output: out}, 7: {input: openEgress, output: out}},
			acls:  2,
		},
		{
			name: "not isolated, not compiled, or without interface: unbound",
			rules: []PodRules{
				podRules("x/a", Direction{}, Direction{}),
				podRules("x/c", in, Direction{}, "x/p"),
			},
			local: []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}, {Pod: "x/b", SwIfIndexes: []uint32{2}}, {Pod: "x/c"}},
			want:  map[uint32]bound{},
			acls:  0,
			tables: map[string]string{
				"x/a": "", "x/b": "", "x/c": "",
			},
		},
		{
			name: "an interface listed by two pods goes to the first by name",
			rules: []PodRules{
				podRules("x/a", in, Direction{}, "x/p"),
				podRules("x/b", Direction{}, isolatedBy(), "x/q"),
			},
			local: []LocalPod{{Pod: "x/b", SwIfIndexes: []uint32{5}}, {Pod: "x/a", SwIfIndexes: []uint32{5}}},
			want:  map[uint32]bound{5: {input: openEgress, output: out}},
			acls:  2,
			tables: map[string]string{
				"x/a": "bound", "x/b": "",
			},
		},
	})
}

func TestPlaceServices(t *testing.T) {
	toY := allowRule("x/p", 0, TCP, 8080, 8080, "10.0.2.0/24")
	local := []LocalPod{{Pod: "x/a", SwIfIndexes: []uint32{1}}}
	runPlaceCases(t, []placeCase{
		{
			name:  "a VIP is opened when all its backends are allowed, and only then",
			rules: []PodRules{podRules("x/a", Direction{}, isolatedBy(toY), "x/p")},
			local: local,
			frontends: []Frontend{
				frontendOf("10.96.0.11:80", TCP, "y/mixed", "10.0.2.10:8080", "10.0.3.10:8080"),
				frontendOf("10.96.0.10:80", TCP, "y/web", "10.0.2.20:8080", "10.0.2.10:8080"),
				frontendOf("10.96.0.12:53", UDP, "y/dns", "10.0.2.10:8080"),
				frontendOf("10.96.0.13:80", TCP, "y/other-port", "10.0.2.10:9090"),
				frontendOf("10.96.0.14:80", TCP, "y/empty"),
			},
			want: map[uint32]bound{1: {
				input: []string{
					"permit+reflect 0.0.0.0/0 10.96.0.10/32 6 any 80 <- egress x/p#0 service y/web",
					"permit+reflect 0.0.0.0/0 10.0.2.0/24 6 any 8080 <- egress x/p#0",
					ndEgress,
				},
				output: openIngress,
			}},
			acls: 2,
		},
		{
			name: "a VIP an allow covers is denied first when a backend is not allowed",
			rules: []PodRules{podRules("x/a", Direction{}, isolatedBy(
				allowRule("x/p", 1, TCP, 8080, 8080, "10.0.2.0/24"),
				allowRule("x/p", 0, TCP, 0, 0, "10.96.0.0/12"),
			), "x/p")},
			local: local,
			frontends: []Frontend{
				frontendOf("10.96.0.10:80", TCP, "y/web", "10.0.2.10:8080", "10.0.3.10:8080"),
				frontendOf("10.96.0.11:80", TCP, "y/api", "10.0.2.20:8080"),
			},
			want: map[uint32]bound{1: {
				input: []string{
					"deny 0.0.0.0/0 10.96.0.10/32 6 any 80 <- egress service y/web",
					"permit+reflect 0.0.0.0/0 10.96.0.11/32 6 any 80 <- egress x/p#1 service y/api",
					"permit+reflect 0.0.0.0/0 10.0.2.0/24 6 any 8080 <- egress x/p#1",
					"permit+reflect 0.0.0.0/0 10.96.0.0/12 6 any any <- egress x/p#0",
					ndEgress,
				},
				output: openIngress,
			}},
			acls: 2,
		},
		{
			name:  "NodePort on node addresses and LoadBalancer IPs, like ClusterIPs",
			rules: []PodRules{podRules("x/a", Direction{}, isolatedBy(allowRule("x/p", 2, TCP, 8080, 8080, "10.0.2.10/32")), "x/p")},
			local: local,
			frontends: []Frontend{
				frontendOf("203.0.113.5:80", TCP, "y/web", "10.0.2.10:8080"),
				frontendOf("192.168.0.1:30080", TCP, "y/web", "10.0.2.10:8080"),
				frontendOf("10.96.0.10:80", TCP, "y/web", "10.0.2.10:8080"),
			},
			want: map[uint32]bound{1: {
				input: []string{
					"permit+reflect 0.0.0.0/0 10.96.0.10/32 6 any 80 <- egress x/p#2 service y/web",
					"permit+reflect 0.0.0.0/0 192.168.0.1/32 6 any 30080 <- egress x/p#2 service y/web",
					"permit+reflect 0.0.0.0/0 203.0.113.5/32 6 any 80 <- egress x/p#2 service y/web",
					"permit+reflect 0.0.0.0/0 10.0.2.10/32 6 any 8080 <- egress x/p#2",
					ndEgress,
				},
				output: openIngress,
			}},
			acls: 2,
		},
		{
			name: "backends allowed by different rules; the first backend's names the VIP",
			rules: []PodRules{podRules("x/a", Direction{}, isolatedBy(
				allowRule("x/p", 0, TCP, 8080, 8080, "10.0.2.10/32"),
				allowRule("x/q", 4, AnyProtocol, 0, 0, "10.0.3.0/24"),
			), "x/p", "x/q")},
			local: local,
			frontends: []Frontend{
				frontendOf("10.96.0.10:80", TCP, "y/web", "10.0.3.10:8080", "10.0.2.10:8080"),
			},
			want: map[uint32]bound{1: {
				input: []string{
					"permit+reflect 0.0.0.0/0 10.96.0.10/32 6 any 80 <- egress x/p#0 service y/web",
					"permit+reflect 0.0.0.0/0 10.0.2.10/32 6 any 8080 <- egress x/p#0",
					"permit+reflect 0.0.0.0/0 10.0.3.0/24 0 any any <- egress x/q#4",
					ndEgress,
				},
				output: openIngress,
			}},
			acls: 2,
		},
		{
			name:      "frontends do not touch ingress tables",
			rules:     []PodRules{podRules("x/a", isolatedBy(allowRule("x/p", 0, TCP, 0, 0)), Direction{}, "x/p")},
			local:     local,
			frontends: []Frontend{frontendOf("10.96.0.10:80", TCP, "y/web", "10.0.1.10:80")},
			want: map[uint32]bound{1: {
				input: openEgress,
				output: []string{
					"permit+reflect 0.0.0.0/0 0.0.0.0/0 6 any any <- ingress x/p#0",
					"permit+reflect ::/0 ::/0 6 any any <- ingress x/p#0",
					ndIngress,
				},
			}},
			acls: 2,
		},
	})
}

// Named ports resolve per target pod (the compiler's job), so pods selected
// by one policy can need different tables.
func TestPlaceNamedPorts(t *testing.T) {
	nss, pods := cluster3()
	pods[0] = newPod("x/a", "10.0.1.10", withPort("http", tcp, 8080))
	pods[1] = newPod("x/b", "10.0.1.20", withPort("http", tcp, 9090))
	compiled := Compile(Input{Pods: pods, Namespaces: nss, Policies: []*networkingv1.NetworkPolicy{
		netpol("x/web", all(), ingress(rule{ports: ports(namedPort(tcp, "http"))})),
	}})
	in := PlaceInput{Rules: compiled.Pods, Local: []LocalPod{
		{Pod: "x/a", SwIfIndexes: []uint32{1}}, {Pod: "x/b", SwIfIndexes: []uint32{2}}, {Pod: "x/c", SwIfIndexes: []uint32{3}},
	}}
	got := Place(in)
	bindings := checkPlacement(t, in, got)
	want := map[uint32][]string{
		1: {"permit+reflect 0.0.0.0/0 0.0.0.0/0 6 any 8080 <- ingress x/web#0", "permit+reflect ::/0 ::/0 6 any 8080 <- ingress x/web#0", ndIngress},
		2: {"permit+reflect 0.0.0.0/0 0.0.0.0/0 6 any 9090 <- ingress x/web#0", "permit+reflect ::/0 ::/0 6 any 9090 <- ingress x/web#0", ndIngress},
		3: {ndIngress}, // x/c has no port named http: isolated, nothing allowed
	}
	for sw, w := range want {
		if g := bindings[sw]; !slices.Equal(g.output, w) || !slices.Equal(g.input, openEgress) {
			t.Errorf("interface %d:\n got  %q / %q\n want %q / %q", sw, g.output, g.input, w, openEgress)
		}
	}
	if len(bindings) != 3 || tableACLs(got.Desired) != 4 {
		t.Errorf("%d bindings and %d ACLs besides the firewall, want 3 and 4 (three ingress tables, one open egress)", len(bindings), tableACLs(got.Desired))
	}
}

// The result must not depend on the order of the input's slices.
func TestPlaceDeterministic(t *testing.T) {
	rules := map[string]PodRules{}
	var local []LocalPod
	for i := range 20 {
		pod := fmt.Sprintf("x/p%02d", i)
		eg := isolatedBy(allowRule(fmt.Sprintf("x/pol%d", i%3), i%2, TCP, 8080, 8080, "10.0.2.0/24"))
		rules[pod] = podRules(pod, isolatedBy(allowRule("x/in", 0, TCP, uint16(80+i%4), uint16(80+i%4))), eg, "x/in")
		local = append(local, LocalPod{Pod: pod, SwIfIndexes: []uint32{uint32(100 - i), uint32(200 + i)}})
	}
	frontends := []Frontend{
		frontendOf("10.96.0.10:80", TCP, "y/web", "10.0.2.10:8080", "10.0.2.20:8080", "10.0.2.30:8080"),
		frontendOf("10.96.0.11:80", TCP, "y/web2", "10.0.2.10:8080"),
		frontendOf("10.96.0.11:80", TCP, "y/dup", "10.0.2.40:8080"),
	}
	in := PlaceInput{Rules: rules, Local: local, NodeAddresses: addrs("192.168.0.1", "fd00::1"), Frontends: frontends}
	first := Place(in)
	checkPlacement(t, in, first)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10 {
		shuffled := in
		shuffled.Local = slices.Clone(local)
		rng.Shuffle(len(shuffled.Local), func(i, j int) { shuffled.Local[i], shuffled.Local[j] = shuffled.Local[j], shuffled.Local[i] })
		shuffled.Frontends = slices.Clone(frontends)
		rng.Shuffle(len(shuffled.Frontends), func(i, j int) {
			shuffled.Frontends[i], shuffled.Frontends[j] = shuffled.Frontends[j], shuffled.Frontends[i]
		})
		for i := range shuffled.Frontends {
			b := slices.Clone(shuffled.Frontends[i].Backends)
			rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
			shuffled.Frontends[i].Backends = b
		}
		shuffled.NodeAddresses = addrs("fd00::1", "192.168.0.1")
		if got := Place(shuffled); !reflect.DeepEqual(got, first) {
			t.Fatalf("placement changed with input order")
		}
	}
	// 4 ingress port variants; egress: the allow list is the same content
	// for all pods, one table, named by the first policy.
	if n := tableACLs(first.Desired); n != 5 {
		t.Errorf("%d ACLs besides the firewall, want 5", n)
	}
	for _, a := range first.Desired.ACLs {
		if !strings.HasPrefix(a.Tag, "kube-vpp:acl:egress-") {
			continue
		}
		var got []string
		for i, r := range a.Rules {
			got = append(got, showRule(r, first.Origins[a.Tag][i]))
		}
		want := []string{
			"permit+reflect 0.0.0.0/0 10.96.0.10/32 6 any 80 <- egress x/pol0#0 service y/web",
			// Two services on one key: all backends count, the first
			// service by name names it.
			"permit+reflect 0.0.0.0/0 10.96.0.11/32 6 any 80 <- egress x/pol0#0 service y/dup",
			"permit+reflect 0.0.0.0/0 10.0.2.0/24 6 any 8080 <- egress x/pol0#0",
			ndEgress,
		}
		if !slices.Equal(got, want) {
			t.Errorf("shared egress table:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
		}
	}
}
