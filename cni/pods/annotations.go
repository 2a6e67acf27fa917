package pods

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Annotations kube-vpp reads on pods and namespaces, and writes on pods.
// docs/pod-networking.md documents each.
const (
	// AnnotationInterface chooses the pod's interface: tap, veth, memif or vhost-user.
	AnnotationInterface = "kube-vpp.io/interface"
	// AnnotationMemifOnly ("true") gives a memif pod no tap: the memif carries the pod's IP.
	AnnotationMemifOnly = "kube-vpp.io/memif-only"
	// AnnotationVhostUserMode is VPP's side of a vhost-user socket: server (default) or client.
	AnnotationVhostUserMode = "kube-vpp.io/vhost-user-mode"
	// AnnotationIP fixes the pod's addresses: one IP per family, comma-separated.
	AnnotationIP = "kube-vpp.io/ip"
	// AnnotationIPPool, on a namespace, is the CIDRs (comma-separated) its pods draw from.
	AnnotationIPPool = "kube-vpp.io/ip-pool"

	// AnnotationMemifSocket and AnnotationVhostUserSocket are set by the
	// agent: the socket the pod (or its VM) connects to.
	AnnotationMemifSocket     = "kube-vpp.io/memif-socket"
	AnnotationVhostUserSocket = "kube-vpp.io/vhost-user-socket"
)

// Kind is the interface a pod asks for.
type Kind string

// Pod interface kinds.
const (
	KindTap       Kind = "tap"
	KindVeth      Kind = "veth"
	KindMemif     Kind = "memif"
	KindVhostUser Kind = "vhost-user"
)

// Options is what a pod's annotations ask of its network.
type Options struct {
	// Kind is "" when the pod does not choose: the node's default applies.
	Kind        Kind
	MemifOnly   bool
	VhostServer bool
	Fixed       []netip.Addr
}

// AnnotationError is an annotation that cannot be honoured.
type AnnotationError struct {
	Object string // "pod ns/name" or "namespace ns"
	Key    string
	Value  string
	Reason string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("%s: annotation %s=%q: %s", e.Object, e.Key, e.Value, e.Reason)
}

// ParseOptions reads a pod's annotations; pod names it in errors
// ("namespace/name").
func ParseOptions(pod string, ann map[string]string) (Options, error) {
	opts := Options{VhostServer: true}
	bad := func(key, reason string) error {
		return &AnnotationError{Object: "pod " + pod, Key: key, Value: ann[key], Reason: reason}
	}
	if v, ok := ann[AnnotationInterface]; ok {
		switch k := Kind(strings.TrimSpace(strings.ToLower(v))); k {
		case KindTap, KindVeth, KindMemif, KindVhostUser:
			opts.Kind = k
		default:
			return Options{}, bad(AnnotationInterface, "unknown interface kind (want tap, veth, memif or vhost-user)")
		}
	}
	if v, ok := ann[AnnotationMemifOnly]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return Options{}, bad(AnnotationMemifOnly, "want true or false")
		}
		if b && opts.Kind != KindMemif {
			return Options{}, bad(AnnotationMemifOnly, fmt.Sprintf("only applies with %s=memif", AnnotationInterface))
		}
		opts.MemifOnly = b
	}
	if v, ok := ann[AnnotationVhostUserMode]; ok {
		switch strings.TrimSpace(strings.ToLower(v)) {
		case "server":
		case "client":
			opts.VhostServer = false
		default:
			return Options{}, bad(AnnotationVhostUserMode, "want server or client (VPP's role on the socket)")
		}
		if opts.Kind != KindVhostUser {
			return Options{}, bad(AnnotationVhostUserMode, fmt.Sprintf("only applies with %s=vhost-user", AnnotationInterface))
		}
	}
	if v, ok := ann[AnnotationIP]; ok {
		ips, err := parseIPs(v)
		if err != nil {
			return Options{}, bad(AnnotationIP, err.Error())
		}
		opts.Fixed = ips
	}
	return opts, nil
}

// parseIPs reads "a[,b]": at most one address per family.
func parseIPs(v string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[bool]bool{}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", f)
		}
		a = a.Unmap()
		if seen[a.Is6()] {
			return nil, fmt.Errorf("more than one IPv%d address", map[bool]int{false: 4, true: 6}[a.Is6()])
		}
		seen[a.Is6()] = true
		out = append(out, a)
	}
	return out, nil
}

// ParsePool reads a namespace's pool annotation; ok is false when the
// namespace has none.
func ParsePool(namespace string, ann map[string]string) (pool []netip.Prefix, ok bool, err error) {
	v, ok := ann[AnnotationIPPool]
	if !ok {
		return nil, false, nil
	}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		p, perr := netip.ParsePrefix(f)
		switch {
		case perr != nil:
			err = fmt.Errorf("%q is not a CIDR", f)
		case p != p.Masked():
			err = fmt.Errorf("%q has host bits set (did you mean %s?)", f, p.Masked())
		}
		if err != nil {
			return nil, true, &AnnotationError{Object: "namespace " + namespace, Key: AnnotationIPPool, Value: v, Reason: err.Error()}
		}
		pool = append(pool, p)
	}
	return pool, true, nil
}
