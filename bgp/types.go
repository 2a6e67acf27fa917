// Package bgp embeds GoBGP in the agent: it peers with the ToR switches (and
// optionally the other nodes), advertises the node's pod ranges and service
// IPs, and reports the routes it learns so the agent can install them in
// VPP's FIB as multipath routes.
package bgp

import (
	"net/netip"
	"time"
)

// Config is the local speaker's identity and behaviour.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // IPv4, as BGP requires
	// ListenPort is where the speaker accepts sessions; 0 means 179, -1
	// means it only dials out.
	ListenPort int32
	// ListenAddresses restricts where it listens; empty means all.
	ListenAddresses []netip.Addr
	GracefulRestart GracefulRestart
}

// GracefulRestart configures RFC 4724 graceful restart.
type GracefulRestart struct {
	Enabled bool
	// RestartTime is how long peers keep our routes while we restart.
	RestartTime time.Duration
}

// Peer is a BGP neighbour.
type Peer struct {
	Address  netip.Addr
	ASN      uint32
	Port     uint16 // 0 means 179
	Password string // TCP MD5 signature, empty for none
	// EBGPMultihopTTL enables eBGP multihop with this TTL; 0 keeps single hop.
	EBGPMultihopTTL uint8
	// TTLSecurity enables GTSM (RFC 5082) for a directly connected peer.
	TTLSecurity bool
	HoldTime    time.Duration // 0 means 90s
	Keepalive   time.Duration // 0 means a third of HoldTime
	// GracefulRestart negotiates graceful restart with this peer.
	GracefulRestart bool
	Passive         bool
	Description     string
}

// Advertisement is a prefix the node announces, with the next hop peers
// should use to reach it (the node's uplink address of that family).
type Advertisement struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	// Reason says why it is announced (pod-cidr, service-cidr,
	// load-balancer, external-ip), for logs and `kube-vppctl show bgp`.
	Reason string
}

// LearnedRoute is a prefix learned from peers with all its equal-cost next
// hops. An empty NextHops means the prefix was withdrawn.
type LearnedRoute struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
}

// PeerStatus is one neighbour's state for `kube-vppctl show bgp`.
type PeerStatus struct {
	Address     netip.Addr    `json:"address"`
	ASN         uint32        `json:"asn"`
	State       string        `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Uptime      time.Duration `json:"uptime"`
	Received    uint64        `json:"received"`
	Advertised  uint64        `json:"advertised"`
	Description string        `json:"description,omitempty"`
}

// Status is the speaker's state for `kube-vppctl show bgp`.
type Status struct {
	ASN        uint32          `json:"asn"`
	RouterID   netip.Addr      `json:"routerID"`
	Peers      []PeerStatus    `json:"peers"`
	Advertised []Advertisement `json:"advertised"`
	Learned    []LearnedRoute  `json:"learned"`
}
