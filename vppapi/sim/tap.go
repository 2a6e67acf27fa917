package sim

import (
	"crypto/rand"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strings"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/binapi/tapv2"
	"go.uber.org/zap"
)

// tapMaxInstance is TAP_MAX_INSTANCE (src/vnet/devices/tap/tap.c).
const tapMaxInstance = 8192

// Ring sizes as virtio_vring_init takes them.
const (
	defaultRingSize = 256
	maxRingSize     = 32768
)

// tunDefaultMTU is TUN_DEFAULT_PACKET_BYTES, a TUN interface's MTU when no
// host MTU is given.
const tunDefaultMTU = 1500

// tapDev is one tap or tun interface as tap.c keeps it (virtio_if_t).
type tapDev struct {
	id         uint32
	swIfIndex  uint32
	tun        bool
	flags      tapv2.TapFlags
	hostIfName string
	hostNS     string
	hostBridge string
	hostMTU    uint32
	hostMAC    [6]byte
	hostIP4    netip.Prefix
	hostIP6    netip.Prefix
	rxRing     uint16
	txRing     uint16
	host       *hostTap
}

// tapState is tap_main's bitmap of used ids and the devices by sw_if_index.
type tapState struct {
	ids     map[uint32]bool
	byIndex map[uint32]*tapDev
}

func (s *Sim) registerTap(r *registry) {
	serve(r, s.tapCreateV3, &tapv2.TapCreateV3Reply{})
	serve(r, s.tapDeleteV2, &tapv2.TapDeleteV2Reply{})
	serve(r, s.swInterfaceTapV2Dump, &tapv2.SwInterfaceTapV2Details{})
}

// tapCreateV3 is vl_api_tap_create_v3_t_handler: tap_create_if, then the
// tag on whatever index resulted (~0 on failure, where it has no effect).
func (s *Sim) tapCreateV3(m *tapv2.TapCreateV3) []api.Message {
	ifc, rv := s.createTap(m)
	idx := noIndex
	if rv == 0 {
		idx = ifc.index
		if tag := apiString(m.Tag); tag != "" {
			ifc.tag = truncate(tag, tagMax)
		}
	}
	return []api.Message{&tapv2.TapCreateV3Reply{Retval: rv, SwIfIndex: interface_types.InterfaceIndex(idx)}}
}

// createTap follows tap_create_if step by step; see openHostTap for the
// kernel part.
func (s *Sim) createTap(m *tapv2.TapCreateV3) (*iface, int32) {
	st := &s.st.taps
	id := m.ID
	if id != noIndex {
		if st.ids[id] {
			return nil, int32(api.INVALID_INTERFACE) // "interface already exists"
		}
	} else {
		id = 0 // clib_bitmap_next_clear from auto_id_offset, 0 over the API
		for st.ids[id] {
			id++
		}
	}
	if id > tapMaxInstance {
		return nil, int32(api.UNSPECIFIED) // "cannot find free interface id"
	}
	flags := m.TapFlags
	hostName := ""
	if m.HostIfNameSet {
		hostName = apiString(m.HostIfName)
	}
	if flags&tapv2.TAP_API_FLAG_ATTACH != 0 && !m.HostIfNameSet {
		return nil, int32(api.NO_MATCHING_INTERFACE) // "host_if_name is not provided"
	}
	dev := &tapDev{id: id, tun: flags&tapv2.TAP_API_FLAG_TUN != 0, flags: flags}
	req := tapRequest{
		name: hostName, tun: dev.tun, queues: max(int(m.NumRxQueues), 1),
		persist: flags&tapv2.TAP_API_FLAG_PERSIST != 0, attach: flags&tapv2.TAP_API_FLAG_ATTACH != 0,
		noVhostNet: s.noVhostNet, bridge: "",
	}
	if m.HostNamespaceSet {
		req.namespace = apiString(m.HostNamespace)
		dev.hostNS = req.namespace
	}
	switch {
	case flags&tapv2.TAP_API_FLAG_GSO != 0:
		req.offload = tunFCsum | tunFTSO4 | tunFTSO6
	case flags&tapv2.TAP_API_FLAG_CSUM_OFFLOAD != 0:
		req.offload = tunFCsum
	}
	if !dev.tun {
		// A zero host MAC is replaced by a generated one (tap_create_if).
		if m.HostMacAddrSet {
			dev.hostMAC = [6]byte(m.HostMacAddr)
		}
		if dev.hostMAC == ([6]byte{}) {
			dev.hostMAC = generateMAC()
		}
		req.hostMAC = net.HardwareAddr(dev.hostMAC[:])
		if m.HostBridgeSet {
			req.bridge = apiString(m.HostBridge)
			dev.hostBridge = req.bridge
		}
	}
	// VPP takes a prefix as set when its length is not zero.
	if m.HostIP4PrefixSet && m.HostIP4Prefix.Len != 0 {
		dev.hostIP4 = netip.PrefixFrom(netip.AddrFrom4(m.HostIP4Prefix.Address), int(m.HostIP4Prefix.Len))
		req.ip4 = dev.hostIP4
	}
	if m.HostIP6PrefixSet && m.HostIP6Prefix.Len != 0 {
		dev.hostIP6 = netip.PrefixFrom(netip.AddrFrom16(m.HostIP6Prefix.Address), int(m.HostIP6Prefix.Len))
		req.ip6 = dev.hostIP6
	}
	if m.HostIP4GwSet {
		req.gw4 = netip.AddrFrom4(m.HostIP4Gw)
	}
	if m.HostIP6GwSet {
		req.gw6 = netip.AddrFrom16(m.HostIP6Gw)
	}
	if m.HostMtuSet {
		req.mtu, dev.hostMTU = m.HostMtuSize, m.HostMtuSize
	}
	var host *hostTap
	var herr *hostErr
	if s.noHost {
		host, herr = st.virtualHostTap(req)
	} else {
		host, herr = openHostTap(req)
	}
	if herr != nil {
		host.close(true)
		s.log.Info("tap_create_v3 failed", zap.Uint32("id", id), zap.String("host_if_name", hostName),
			zap.Int32("retval", herr.rv), zap.Error(herr))
		return nil, herr.rv
	}
	// virtio_vring_init runs once the host side is done; the tap goes with it.
	for _, sz := range []*uint16{&m.RxRingSz, &m.TxRingSz} {
		if *sz != 0 && (bits.OnesCount16(*sz) != 1 || *sz > maxRingSize) {
			host.close(true)
			return nil, int32(api.INIT_FAILED)
		}
	}
	dev.host, dev.hostIfName = host, host.name
	dev.rxRing, dev.txRing = ringSize(m.RxRingSz), ringSize(m.TxRingSz)

	name := fmt.Sprintf("tap%d", id) // format_virtio_device_name
	if dev.tun {
		name = fmt.Sprintf("tun%d", id)
	}
	ifc := s.st.newIface(name, ifTap)
	ifc.linkUp = true // vnet_hw_interface_set_flags (LINK_UP) at creation
	if dev.tun {
		ifc.l3Only = true
		ifc.l3MTU = tunDefaultMTU
		if dev.hostMTU != 0 {
			ifc.l3MTU = dev.hostMTU
		}
	} else {
		ifc.mac = [6]byte(m.MacAddress)
		if m.UseRandomMac {
			ifc.mac = generateMAC()
		}
	}
	dev.swIfIndex = ifc.index
	st.ids[id] = true
	st.byIndex[ifc.index] = dev
	s.log.Info("tap created", zap.String("interface", name), zap.Uint32("sw_if_index", ifc.index),
		zap.String("host_if_name", dev.hostIfName), zap.String("host_namespace", dev.hostNS))
	return ifc, 0
}

// hostIfNameMax is IFNAMSIZ-1, the longest name the kernel keeps.
const hostIfNameMax = 15

// virtualHostTap stands in for openHostTap under Options.NoHost: only the
// name the kernel would answer is worked out (the requested one cut to
// IFNAMSIZ-1, else the first free tapN or tunN among the simulator's own
// devices in that namespace). NoVhostNet still fails as it does with a host.
func (st *tapState) virtualHostTap(req tapRequest) (*hostTap, *hostErr) {
	if req.noVhostNet {
		return nil, failed(api.SYSCALL_ERROR_1, "open '/dev/vhost-net': no such file or directory")
	}
	name := truncate(req.name, hostIfNameMax)
	if name == "" {
		used := map[string]bool{}
		for _, dev := range st.byIndex {
			if dev.hostNS == req.namespace {
				used[dev.hostIfName] = true
			}
		}
		pattern := "tap%d"
		if req.tun {
			pattern = "tun%d"
		}
		for n := 0; ; n++ {
			if name = fmt.Sprintf(pattern, n); !used[name] {
				break
			}
		}
	}
	return &hostTap{name: name}, nil
}

func ringSize(sz uint16) uint16 {
	if sz == 0 {
		return defaultRingSize
	}
	return sz
}

// tapDeleteV2 is tap_delete_if: only virtio taps and tuns; the interface
// goes down and away, then tap_free unsets persistence and closes the
// queues, which removes the Linux device.
func (s *Sim) tapDeleteV2(m *tapv2.TapDeleteV2) []api.Message {
	idx := uint32(m.SwIfIndex)
	dev, ok := s.st.taps.byIndex[idx]
	if !ok {
		return []api.Message{&tapv2.TapDeleteV2Reply{Retval: int32(api.INVALID_SW_IF_INDEX)}}
	}
	ifc := s.st.ifaces[idx]
	ifc.linkUp = false
	ifc.adminUp = false
	s.st.deleteIface(ifc)
	dev.host.close(true)
	delete(s.st.taps.byIndex, idx)
	delete(s.st.taps.ids, dev.id)
	s.log.Info("tap deleted", zap.String("interface", ifc.name), zap.String("host_if_name", dev.hostIfName))
	return []api.Message{&tapv2.TapDeleteV2Reply{}}
}

// swInterfaceTapV2Dump is vl_api_sw_interface_tap_v2_dump_t_handler: ~0
// lists every tap; an invalid index answers nothing.
func (s *Sim) swInterfaceTapV2Dump(m *tapv2.SwInterfaceTapV2Dump) []api.Message {
	filter := uint32(m.SwIfIndex)
	if filter != noIndex {
		if _, ok := s.st.ifaces[filter]; !ok {
			return nil
		}
	}
	var out []api.Message
	for _, ifc := range s.st.sortedIfaces() {
		dev, ok := s.st.taps.byIndex[ifc.index]
		if !ok || filter != noIndex && filter != ifc.index {
			continue
		}
		d := &tapv2.SwInterfaceTapV2Details{
			SwIfIndex:     ifc.index,
			ID:            dev.id,
			TxRingSz:      dev.txRing,
			RxRingSz:      dev.rxRing,
			HostMtuSize:   dev.hostMTU,
			HostMacAddr:   ethernet_types.MacAddress(dev.hostMAC),
			TapFlags:      dev.flags,
			DevName:       ifc.name, // hi->name, VPP's own name for it
			HostIfName:    dev.hostIfName,
			HostNamespace: dev.hostNS,
			HostBridge:    dev.hostBridge,
		}
		if dev.hostIP4.IsValid() {
			d.HostIP4Prefix = ip_types.IP4AddressWithPrefix{Address: dev.hostIP4.Addr().As4(), Len: uint8(dev.hostIP4.Bits())}
		}
		if dev.hostIP6.IsValid() {
			d.HostIP6Prefix = ip_types.IP6AddressWithPrefix{Address: dev.hostIP6.Addr().As16(), Len: uint8(dev.hostIP6.Bits())}
		}
		out = append(out, d)
	}
	return out
}

// releaseTaps closes every tap's queues, as the kernel does when VPP dies:
// devices without IFF_PERSIST disappear, persistent ones stay.
func (st *state) releaseTaps() {
	for idx, dev := range st.taps.byIndex {
		dev.host.close(false)
		delete(st.taps.byIndex, idx)
	}
}

// generateMAC is ethernet_mac_address_generate: 02:fe and four random bytes.
func generateMAC() [6]byte {
	mac := [6]byte{0x02, 0xfe}
	_, _ = rand.Read(mac[2:])
	return mac
}

// apiString is a fixed-size API string up to its first NUL.
func apiString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
