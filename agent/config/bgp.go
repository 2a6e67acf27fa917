package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kube-vpp/kube-vpp/bgp"
)

// BGP configures the embedded BGP speaker (the bgp.* keys).
type BGP struct {
	Enabled bool   // bgp.enabled
	ASN     uint32 // bgp.asn; 0 only while BGP is disabled and no ASN was given
	// RouterID is bgp.router-id; invalid (the zero Addr) when unset, meaning
	// the node's IPv4 InternalIP at run time.
	RouterID netip.Addr
	// ListenPort is bgp.listen-port; -1 means the speaker only dials out.
	ListenPort int32
	// NextHopV4 and NextHopV6 are bgp.next-hop-v4 and -v6; invalid when
	// unset, meaning the node's InternalIP of that family.
	NextHopV4, NextHopV6 netip.Addr
	NodeMesh             bool // bgp.node-mesh
	GracefulRestart      bgp.GracefulRestart
	Advertise            Advertise
	Peers                []bgp.Peer // bgp.peers, every field filled in
}

// Advertise says which prefixes the speaker announces (bgp.advertise.*).
type Advertise struct {
	PodCIDRs        bool
	ServiceCIDRs    bool
	LoadBalancerIPs bool
	ExternalIPs     bool
}

// Limits from the BGP RFCs, checked here so that a session never fails on
// a value the speaker would only refuse at run time.
const (
	maxASN = 1<<32 - 1 // RFC 6793 four-octet AS numbers
	// RFC 4724 §3 carries the restart time in a 12-bit field of seconds.
	maxRestartTime = 4095 * time.Second
	// RFC 4271 §4.2: the hold time is 0 or at least 3 seconds, in 16 bits.
	minHoldTime = 3 * time.Second
	maxHoldTime = 65535 * time.Second
	// Linux refuses TCP MD5 keys longer than TCP_MD5SIG_MAXKEYLEN.
	maxPasswordLen = 80

	// notShown stands for values that may hold a password in errors, which
	// end up in logs.
	notShown = "(not shown)"

	defaultPeerPort     = 179
	defaultHoldTime     = 90 * time.Second
	defaultPeerGraceful = true
)

func (p *parser) bgp() BGP {
	asn := p.str(KeyBGPASN)
	b := BGP{
		Enabled:    p.boolean(KeyBGPEnabled),
		ASN:        p.asn(KeyBGPASN, asn),
		RouterID:   p.routerID(KeyBGPRouterID),
		ListenPort: p.listenPort(KeyBGPListenPort),
		NextHopV4:  p.nextHop(KeyBGPNextHopV4, 4),
		NextHopV6:  p.nextHop(KeyBGPNextHopV6, 6),
		NodeMesh:   p.boolean(KeyBGPNodeMesh),
		GracefulRestart: bgp.GracefulRestart{
			Enabled:     p.boolean(KeyBGPGracefulRestart),
			RestartTime: p.restartTime(KeyBGPRestartTime),
		},
		Advertise: Advertise{
			PodCIDRs:        p.boolean(KeyBGPAdvertisePodCIDRs),
			ServiceCIDRs:    p.boolean(KeyBGPAdvertiseServiceCIDRs),
			LoadBalancerIPs: p.boolean(KeyBGPAdvertiseLoadBalancers),
			ExternalIPs:     p.boolean(KeyBGPAdvertiseExternalIPs),
		},
		Peers: p.peers(KeyBGPPeers),
	}
	if b.Enabled && asn == "" {
		p.invalid(KeyBGPASN, "", fmt.Sprintf("required when %s is true: set --bgp-asn or %s", KeyBGPEnabled, envName(KeyBGPASN)))
	}
	return b
}

// boolean parses key as true or false (also 1/0, t/f, any case).
func (p *parser) boolean(key string) bool {
	s := p.str(key)
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.invalid(key, s, "must be true or false")
	}
	return b
}

// asn parses s, the value of key, as an AS number; "" gives 0, unset.
func (p *parser) asn(key, s string) uint32 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > maxASN {
		p.invalid(key, s, fmt.Sprintf("not an AS number from 1 to %d", uint64(maxASN)))
		return 0
	}
	return uint32(n)
}

// routerID requires an IPv4 address other than 0.0.0.0 (RFC 6286: the BGP
// identifier is a non-zero four-octet number), or "" for the node's address.
func (p *parser) routerID(key string) netip.Addr {
	s := p.str(key)
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is4():
		p.invalid(key, s, "not an IPv4 address (BGP router IDs are IPv4 even on IPv6-only nodes)")
	case a.IsUnspecified():
		p.invalid(key, s, "must not be 0.0.0.0")
	default:
		return a
	}
	return netip.Addr{}
}

func (p *parser) listenPort(key string) int32 {
	s := p.str(key)
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < -1 || n > 65535 {
		p.invalid(key, s, "not a port from 0 to 65535, or -1 to not listen")
		return 0
	}
	return int32(n)
}

// nextHop requires a unicast address of the family (4 or 6), or "" for the
// node's address of that family.
func (p *parser) nextHop(key string, family int) netip.Addr {
	s := p.str(key)
	if s == "" {
		return netip.Addr{}
	}
	a, err := unicastAddr(s)
	switch {
	case err != nil:
		p.invalid(key, s, err.Error())
	case family == 4 && !a.Is4(), family == 6 && !a.Is6():
		p.invalid(key, s, fmt.Sprintf("not an IPv%d address", family))
	default:
		return a
	}
	return netip.Addr{}
}

// unicastAddr parses s as an address a BGP session or next hop can use.
func unicastAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return a, errors.New("not an IP address")
	case a.Zone() != "":
		return a, errors.New("an address with a zone is not supported")
	case a.Is4In6():
		return a, fmt.Errorf("write IPv4 addresses in dotted form (%s)", a.Unmap())
	case a.IsUnspecified(), a.IsMulticast():
		return a, errors.New("not a unicast address")
	}
	return a, nil
}

// restartTime requires whole seconds from 1s to 4095s.
func (p *parser) restartTime(key string) time.Duration {
	s := p.str(key)
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.invalid(key, s, "not a duration (write it with a unit, e.g. 120s, 2m)")
	case d < time.Second || d > maxRestartTime || d%time.Second != 0:
		p.invalid(key, s, "must be whole seconds from 1s to 4095s (RFC 4724 carries it in 12 bits)")
	}
	return d
}

// peers reads the bgp.peers list: from the file a YAML list of mappings,
// from the environment the same as JSON. It checks every peer and reports
// each bad field as bgp.peers[i].field.
func (p *parser) peers(key string) []bgp.Peer {
	var items []any
	switch raw := p.v.Get(key).(type) {
	case nil:
		return nil
	case []any:
		items = raw
	case string:
		if strings.TrimSpace(raw) == "" {
			return nil
		}
		list, err := decodeJSONList(raw)
		if err != nil {
			p.invalid(key, notShown, fmt.Sprintf(`not a JSON list of peers (e.g. [{"address":"192.0.2.1","asn":65001}]): %v`, err))
			return nil
		}
		items = list
	default:
		p.invalid(key, fmt.Sprint(raw), "expected a list of peers")
		return nil
	}

	out := make([]bgp.Peer, 0, len(items))
	first := make(map[netip.Addr]int) // address -> index of the peer that has it
	for i, item := range items {
		elemKey := fmt.Sprintf("%s[%d]", key, i)
		m, ok := item.(map[string]any)
		if !ok {
			p.invalid(elemKey, fmt.Sprint(item), "expected a mapping with at least address and asn")
			continue
		}
		peer, ok := p.peer(elemKey, m)
		if !ok {
			continue
		}
		if j, dup := first[peer.Address]; dup {
			p.invalid(elemKey+".address", peer.Address.String(), fmt.Sprintf("same address as %s[%d]", key, j))
			continue
		}
		first[peer.Address] = i
		out = append(out, peer)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// decodeJSONList decodes s as one JSON array, keeping numbers exact.
func decodeJSONList(s string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var list []any
	if err := dec.Decode(&list); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the list")
	}
	return list, nil
}

// peerKeys returns the keys a peer mapping may hold.
func peerKeys() []string {
	return []string{
		"address", "asn", "port", "password", "ebgp-multihop", "ttl-security",
		"hold-time", "keepalive", "graceful-restart", "passive", "description",
	}
}

// peer converts one bgp.peers element; ok is false if any field was bad.
func (p *parser) peer(elemKey string, m map[string]any) (peer bgp.Peer, ok bool) {
	before := len(p.errs)
	known := make(map[string]bool)
	for _, k := range peerKeys() {
		known[k] = true
	}
	// Keys are matched in lower case as viper does for the file; JSON from
	// the environment keeps its case otherwise.
	fields := make(map[string]string, len(m))
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		name := strings.ToLower(k)
		fk := elemKey + "." + name
		if !known[name] {
			p.invalid(fk, notShown, "unknown key"+suggestKey(name, known))
			continue
		}
		if s, ok := p.scalar(fk, m[k]); ok {
			fields[name] = s
		}
	}
	key := func(field string) string { return elemKey + "." + field }
	boolField := func(field string, def bool) bool {
		s, set := fields[field]
		if !set {
			return def
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			p.invalid(key(field), s, "must be true or false")
		}
		return b
	}

	if s, set := fields["address"]; !set {
		p.invalid(key("address"), "", "required: the neighbour's IPv4 or IPv6 address")
	} else if a, err := unicastAddr(s); err != nil {
		p.invalid(key("address"), s, err.Error())
	} else {
		peer.Address = a
	}
	if s := fields["asn"]; s == "" {
		p.invalid(key("asn"), s, "required: the neighbour's AS number")
	} else {
		peer.ASN = p.asn(key("asn"), s)
	}

	peer.Port = defaultPeerPort
	if s, set := fields["port"]; set {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			p.invalid(key("port"), s, "not a port from 1 to 65535")
		}
		peer.Port = uint16(n)
	}
	peer.Password = fields["password"]
	if len(peer.Password) > maxPasswordLen {
		p.invalid(key("password"), notShown, fmt.Sprintf("longer than %d bytes, the most Linux accepts for a TCP MD5 key", maxPasswordLen))
	}
	if s, set := fields["ebgp-multihop"]; set {
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil {
			p.invalid(key("ebgp-multihop"), s, "not a TTL from 1 to 255 (0 keeps single hop)")
		}
		peer.EBGPMultihopTTL = uint8(n)
	}
	peer.TTLSecurity = boolField("ttl-security", false)
	if peer.TTLSecurity && peer.EBGPMultihopTTL > 0 {
		p.invalid(key("ttl-security"), "true", "cannot be combined with ebgp-multihop: TTL security (RFC 5082) is for directly connected peers")
	}

	peer.HoldTime = defaultHoldTime
	if s, set := fields["hold-time"]; set {
		peer.HoldTime = p.peerDuration(key("hold-time"), s)
		// RFC 4271 also allows 0 (no keepalives); kube-vpp refuses it because
		// a dead ToR would then never be noticed and its routes never leave VPP.
		if h := peer.HoldTime; h < minHoldTime || h > maxHoldTime {
			p.invalid(key("hold-time"), s, "must be from 3s to 65535s (RFC 4271; 0, no keepalives, is not supported)")
		}
	}
	peer.Keepalive = (peer.HoldTime / 3).Truncate(time.Second)
	if s, set := fields["keepalive"]; set {
		peer.Keepalive = p.peerDuration(key("keepalive"), s)
		if k, h := peer.Keepalive, peer.HoldTime; k < time.Second || k >= h {
			p.invalid(key("keepalive"), s, fmt.Sprintf("must be at least 1s and less than hold-time (%s)", h))
		}
	}

	peer.GracefulRestart = boolField("graceful-restart", defaultPeerGraceful)
	peer.Passive = boolField("passive", false)
	peer.Description = fields["description"]
	return peer, len(p.errs) == before
}

// scalar returns v as a trimmed string, refusing lists and mappings.
func (p *parser) scalar(key string, v any) (string, bool) {
	if v == nil {
		return "", true
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		p.invalid(key, fmt.Sprint(v), "expected a single value, not a list or mapping")
		return "", false
	}
	return strings.TrimSpace(fmt.Sprint(v)), true
}

// peerDuration parses whole seconds, as BGP timers are carried.
func (p *parser) peerDuration(key, s string) time.Duration {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.invalid(key, s, "not a duration (write it with a unit, e.g. 90s)")
	case d < 0 || d%time.Second != 0:
		p.invalid(key, s, "must be whole seconds, not negative")
	}
	return d
}
