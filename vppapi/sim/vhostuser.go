package sim

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/vhost_user"
	"go.uber.org/zap"
)

// vhostSockFilenameMax is vhost_user_intf_t.sock_filename[256] less its NUL.
const vhostSockFilenameMax = 255

// sunPathMax is sizeof(sockaddr_un.sun_path) less the NUL strncpy keeps.
const sunPathMax = 107

// vhostIf is vhost_user_intf_t as far as the API shows it.
type vhostIf struct {
	dev          uint32
	ifc          *iface
	sockFilename string
	isServer     bool
	server       *hostListener // unix_server_index: nil for a client and under NoHost
	// Options kept from the create or modify request; until a driver
	// negotiates, the features VPP reports stay 0.
	disableMrgRxbuf, disableIndirect bool
	gso, packed, eventIdx            bool
}

// vhostState is vhost_user_main_t. Its zero value is ready.
type vhostState struct {
	ifs    []*vhostIf        // the interfaces pool, by dev instance
	free   []uint32          // freed pool slots, reused last first
	bySock map[string]uint32 // if_index_by_sock_name
	// showDev is show_dev_instance_by_real_dev_instance: the number a
	// renumbered interface shows in its name.
	showDev map[uint32]uint32
	random  uint32 // vum->random, seeded from the clock on first use
	seeded  bool
}

// vhostArgs is vhost_user_create_if_args_t.
type vhostArgs struct {
	swIfIndex                        uint32
	sockFilename                     string
	server                           bool
	renumber                         bool
	customDevInstance                uint32
	useCustomMAC                     bool
	hwAddr                           [6]byte
	disableMrgRxbuf, disableIndirect bool
	gso, packed, eventIdx            bool
}

func (s *Sim) registerVhostUser(r *registry) {
	serve(r, s.createVhostUserIfV2, &vhost_user.CreateVhostUserIfV2Reply{})
	serve(r, s.modifyVhostUserIfV2, &vhost_user.ModifyVhostUserIfV2Reply{})
	serve(r, s.deleteVhostUserIf, &vhost_user.DeleteVhostUserIfReply{})
	serve(r, s.swInterfaceVhostUserDump, &vhost_user.SwInterfaceVhostUserDetails{})
}

func (vs *vhostState) init() {
	if vs.bySock == nil {
		vs.bySock = map[string]uint32{}
		vs.showDev = map[uint32]uint32{}
	}
}

// createVhostUserIfV2 is vl_api_create_vhost_user_if_v2_t_handler: the tag
// is set only when the interface was created.
func (s *Sim) createVhostUserIfV2(m *vhost_user.CreateVhostUserIfV2) []api.Message {
	args := vhostArgs{
		swIfIndex: noIndex, sockFilename: cString(m.SockFilename, vhostSockFilenameMax), server: m.IsServer,
		renumber: m.Renumber, customDevInstance: m.CustomDevInstance,
		useCustomMAC: m.UseCustomMac, hwAddr: [6]byte(m.MacAddress),
		disableMrgRxbuf: m.DisableMrgRxbuf, disableIndirect: m.DisableIndirectDesc,
		gso: m.EnableGso, packed: m.EnablePacked, eventIdx: m.EnableEventIdx,
	}
	rv := s.vhostCreateIf(&args)
	if rv == 0 {
		if tag := cString(m.Tag, tagMax); tag != "" {
			s.st.ifaces[args.swIfIndex].tag = tag
		}
	}
	return []api.Message{&vhost_user.CreateVhostUserIfV2Reply{Retval: rv, SwIfIndex: interface_types.InterfaceIndex(args.swIfIndex)}}
}

// vhostCreateIf is vhost_user_create_if. A socket path another interface
// uses is refused with that interface's index in the reply.
func (s *Sim) vhostCreateIf(args *vhostArgs) int32 {
	vs := &s.st.vhost
	vs.init()
	if args.sockFilename == "" {
		return int32(api.INVALID_ARGUMENT)
	}
	if dev, ok := vs.bySock[args.sockFilename]; ok {
		args.swIfIndex = vs.ifs[dev].ifc.index
		return int32(api.IF_ALREADY_EXISTS)
	}
	var ln *hostListener
	if args.server {
		var rv int32
		if ln, rv = s.vhostInitServerSock(args.sockFilename); rv != 0 {
			return rv
		}
	}
	vui := &vhostIf{}
	vs.put(vui)
	// vhost_user_create_ethernet: a custom MAC or 02:fe and a random tail.
	mac := args.hwAddr
	if !args.useCustomMAC {
		vs.random = lcg(vs.nextSeed())
		r := vs.random
		mac = [6]byte{0x02, 0xfe, byte(r), byte(r >> 8), byte(r >> 16), byte(r >> 24)}
	}
	vui.ifc = s.st.newIface(vs.name(vui.dev), ifVhostUser)
	vui.ifc.mac = mac
	vs.vuiInit(vui, ln, args)
	if args.renumber {
		vs.renumber(vui, args.customDevInstance)
	}
	args.swIfIndex = vui.ifc.index
	return 0
}

// nextSeed returns vum->random, seeded once from the clock as
// random_default_seed does.
func (vs *vhostState) nextSeed() uint32 {
	if !vs.seeded {
		vs.random, vs.seeded = uint32(time.Now().UnixNano()), true
	}
	return vs.random
}

// vuiInit is vhost_user_vui_init: a server interface owns its listener.
func (vs *vhostState) vuiInit(vui *vhostIf, ln *hostListener, args *vhostArgs) {
	vui.server, vui.isServer = ln, args.server
	vui.sockFilename = args.sockFilename
	vui.disableMrgRxbuf, vui.disableIndirect = args.disableMrgRxbuf, args.disableIndirect
	vui.gso, vui.packed, vui.eventIdx = args.gso, args.packed, args.eventIdx
	vs.bySock[vui.sockFilename] = vui.dev
}

// name is format_vhost_user_interface_name; VPP prints the instance with %d.
func (vs *vhostState) name(dev uint32) string {
	n := dev
	if show, ok := vs.showDev[dev]; ok && show != noIndex {
		n = show
	}
	return fmt.Sprintf("VirtualEthernet0/0/%d", int32(n))
}

// renumber is vnet_interface_name_renumber with vhost_user_name_renumber:
// no check that another interface already shows that number.
func (vs *vhostState) renumber(vui *vhostIf, instance uint32) {
	vs.showDev[vui.dev] = instance
	vui.ifc.name = vs.name(vui.dev)
}

func (vs *vhostState) put(vui *vhostIf) {
	if n := len(vs.free); n > 0 {
		vui.dev = vs.free[n-1]
		vs.free = vs.free[:n-1]
		vs.ifs[vui.dev] = vui
		return
	}
	vui.dev = uint32(len(vs.ifs))
	vs.ifs = append(vs.ifs, vui)
}

// vhostInitServerSock is vhost_user_init_server_sock: whatever file is at
// the path is unlinked, then the (107-byte truncated) path is bound. Under
// NoHost nothing is bound and the listener is nil.
func (s *Sim) vhostInitServerSock(filename string) (*hostListener, int32) {
	if s.noHost {
		return nil, 0
	}
	_ = syscall.Unlink(filename)
	ln, err := listenHost("unix", sunPath(filename))
	if err != nil {
		s.log.Info("vhost-user listener failed", zap.String("socket", filename), zap.Error(err))
		return nil, int32(api.SYSCALL_ERROR_2)
	}
	return ln, 0
}

// sunPath is the name strncpy leaves in sun_path, kept a file name for Go
// (which would read a leading '@' as an abstract socket).
func sunPath(filename string) string {
	p := filename[:min(len(filename), sunPathMax)]
	if strings.HasPrefix(p, "@") {
		p = "./" + p
	}
	return p
}

// byIndex is the device-class check of the delete and modify
// paths: the index must name a vhost-user interface.
func (vs *vhostState) byIndex(idx uint32) *vhostIf {
	for _, vui := range vs.ifs {
		if vui != nil && vui.ifc.index == idx {
			return vui
		}
	}
	return nil
}

// termIf is vhost_user_term_if: a server closes its listener and unlinks
// its socket file.
func (vs *vhostState) termIf(vui *vhostIf) {
	if vui.server != nil {
		vui.server.close()
		vui.server = nil
		_ = syscall.Unlink(vui.sockFilename)
	}
	delete(vs.bySock, vui.sockFilename)
}

// modifyVhostUserIfV2 is vhost_user_modify_if: the new socket is opened
// before the old one is torn down, as VPP does (so re-modifying a server
// to its own path unlinks the fresh socket's file).
func (s *Sim) modifyVhostUserIfV2(m *vhost_user.ModifyVhostUserIfV2) []api.Message {
	vs := &s.st.vhost
	vs.init()
	reply := func(rv int32) []api.Message {
		return []api.Message{&vhost_user.ModifyVhostUserIfV2Reply{Retval: rv}}
	}
	vui := vs.byIndex(uint32(m.SwIfIndex))
	if vui == nil {
		return reply(int32(api.INVALID_SW_IF_INDEX))
	}
	args := vhostArgs{
		sockFilename: cString(m.SockFilename, vhostSockFilenameMax), server: m.IsServer,
		renumber: m.Renumber, customDevInstance: m.CustomDevInstance,
		gso: m.EnableGso, packed: m.EnablePacked, eventIdx: m.EnableEventIdx,
	}
	if args.sockFilename == "" {
		return reply(int32(api.INVALID_ARGUMENT))
	}
	if dev, ok := vs.bySock[args.sockFilename]; ok && dev != vui.dev {
		return reply(int32(api.IF_ALREADY_EXISTS))
	}
	var ln *hostListener
	if args.server {
		var rv int32
		if ln, rv = s.vhostInitServerSock(args.sockFilename); rv != 0 {
			return reply(rv)
		}
	}
	vs.termIf(vui)
	vs.vuiInit(vui, ln, &args)
	if args.renumber {
		vs.renumber(vui, args.customDevInstance)
	}
	return reply(0)
}

// deleteVhostUserIf is vl_api_delete_vhost_user_if_t_handler.
func (s *Sim) deleteVhostUserIf(m *vhost_user.DeleteVhostUserIf) []api.Message {
	vs := &s.st.vhost
	vs.init()
	vui := vs.byIndex(uint32(m.SwIfIndex))
	if vui == nil {
		return []api.Message{&vhost_user.DeleteVhostUserIfReply{Retval: int32(api.INVALID_SW_IF_INDEX)}}
	}
	s.vhostDeleteIf(vui)
	return []api.Message{&vhost_user.DeleteVhostUserIfReply{}}
}

// vhostDeleteIf is vhost_user_delete_if: the renumbering goes with the
// interface.
func (s *Sim) vhostDeleteIf(vui *vhostIf) {
	vs := &s.st.vhost
	vs.termIf(vui)
	delete(vs.showDev, vui.dev)
	s.st.deleteIface(vui.ifc)
	vs.ifs[vui.dev] = nil
	vs.free = append(vs.free, vui.dev)
}

// swInterfaceVhostUserDump is vl_api_sw_interface_vhost_user_dump_t_handler:
// a filter naming no interface ends the dump empty. Nothing has connected,
// so features, header size and regions are 0; a client's sock_errno is
// what vhost_user_process's connect attempt gets now, and under NoHost 0,
// as vhost_user_vui_init leaves it before any attempt.
func (s *Sim) swInterfaceVhostUserDump(m *vhost_user.SwInterfaceVhostUserDump) []api.Message {
	vs := &s.st.vhost
	filter := uint32(m.SwIfIndex)
	if _, ok := s.st.ifaces[filter]; filter != noIndex && !ok {
		return nil
	}
	var out []api.Message
	for _, vui := range vs.ifs {
		if vui == nil || (filter != noIndex && vui.ifc.index != filter) {
			continue
		}
		d := &vhost_user.SwInterfaceVhostUserDetails{
			SwIfIndex:     interface_types.InterfaceIndex(vui.ifc.index),
			InterfaceName: cString(vui.ifc.name, 63),
			IsServer:      vui.isServer,
			SockFilename:  vui.sockFilename,
		}
		if !vui.isServer && !s.noHost {
			d.SockErrno = connectErrno(sunPath(vui.sockFilename))
		}
		out = append(out, d)
	}
	return out
}

// connectErrno is the errno of vhost_user_process's connect to a client
// socket; a connection that succeeds is closed again (the simulator does
// not speak vhost-user) and reported as 0.
func connectErrno(path string) int32 {
	err := probeUnix(path)
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return int32(errno)
	}
	return int32(syscall.EAGAIN)
}

// releaseVhost is vhost_user_exit, which VPP runs when its main loop ends
// (SIGTERM): every server closes its listener and unlinks its socket file.
func (st *state) releaseVhost() {
	for _, vui := range st.vhost.ifs {
		if vui != nil && vui.server != nil {
			vui.server.close()
			vui.server = nil
			_ = syscall.Unlink(vui.sockFilename)
		}
	}
}

// hostListener is a listening unix socket the simulated VPP holds on the
// host. It accepts connections and closes them at once (the simulator
// speaks neither memif nor vhost-user) until close.
type hostListener struct {
	ln   *net.UnixListener
	done chan struct{}
}

func listenHost(network, path string) (*hostListener, error) {
	ln, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	if err != nil {
		return nil, err
	}
	// close(2) leaves the file; VPP unlinks explicitly where it does.
	ln.SetUnlinkOnClose(false)
	l := &hostListener{ln: ln, done: make(chan struct{})}
	go l.serve()
	return l, nil
}

func (l *hostListener) serve() {
	defer close(l.done)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

// close stops listening and waits for the accept loop to end.
func (l *hostListener) close() {
	_ = l.ln.Close()
	<-l.done
}

// probeUnix connects to a stream unix socket and hangs up.
func probeUnix(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}
