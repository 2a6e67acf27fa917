package config

import (
	"fmt"
	"strconv"
	"strings"
)

// PodInterface is the interface kind pods get when their annotations ask
// for nothing else.
type PodInterface string

// Pod interface defaults.
const (
	// PodInterfaceAuto picks tap when /dev/vhost-net exists, else veth.
	PodInterfaceAuto PodInterface = "auto"
	PodInterfaceTap  PodInterface = "tap"
	// PodInterfaceVeth is a veth pair whose host end VPP attaches with
	// af_packet; it needs no /dev/vhost-net.
	PodInterfaceVeth PodInterface = "veth"
)

// Pods configures pod networking and the CNI server.
type Pods struct {
	CNISocket string       // cni.socket
	StateDir  string       // cni.state-dir: IP allocations survive restarts here
	Interface PodInterface // pods.interface
	MTU       int          // pods.mtu
	MemifDir  string       // pods.memif-dir: per-pod memif sockets, mounted by pods
	VhostDir  string       // pods.vhost-user-dir: per-pod vhost-user sockets
}

func (p *parser) pods() Pods {
	out := Pods{
		CNISocket: p.path(KeyCNISocket),
		StateDir:  p.path(KeyCNIStateDir),
		MemifDir:  p.path(KeyPodsMemifDir),
		VhostDir:  p.path(KeyPodsVhostDir),
		MTU:       p.intRange(KeyPodsMTU, 576, 65535),
	}
	s := strings.ToLower(p.str(KeyPodsInterface))
	switch kind := PodInterface(s); kind {
	case PodInterfaceAuto, PodInterfaceTap, PodInterfaceVeth:
		out.Interface = kind
	default:
		p.invalid(KeyPodsInterface, s, "must be auto, tap or veth")
	}
	return out
}

// intRange parses key as a decimal integer within [lo, hi].
func (p *parser) intRange(key string, lo, hi int) int {
	s := p.str(key)
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		p.invalid(key, s, fmt.Sprintf("must be a whole number from %d to %d", lo, hi))
	}
	return n
}
