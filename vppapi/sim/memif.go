package sim

import (
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/memif"
	"go.uber.org/zap"
)

// Defaults of src/plugins/memif/memif.h and private.h.
const (
	memifDefaultSocketFilename = "memif.sock"
	memifDefaultRingSize       = 1024
	memifDefaultBufferSize     = 2048
	memifDefaultQueues         = 1
	memifSecretMax             = 23 // secret[24], NUL-terminated by the handler
)

// memifSocket is memif_socket_file_t.
type memifSocket struct {
	id       uint32
	filename string
	// refCnt is signed as in VPP: memif_create_if's error path decrements
	// it before it was incremented, and the sim keeps that arithmetic.
	refCnt     int
	isListener bool
	ids        map[uint32]uint32 // dev_instance_by_id
	ln         *hostListener     // msf->sock of a listener
}

// memifIf is memif_if_t: cfg holds what memif_create_if stores; the run
// values memif_dump reports stay zero until a peer connects, which the
// simulator never sees.
type memifIf struct {
	dev        uint32
	sock       *memifSocket
	id         uint32
	mode       memif.MemifMode
	slave      bool
	zeroCopy   bool
	secret     string
	log2Ring   uint8
	bufferSize uint16
	rxQueues   uint8
	txQueues   uint8
	ifc        *iface
}

// memifState is memif_main_t. Its zero value is ready: init runs on first use.
type memifState struct {
	runtimeDir string
	sockets    map[uint32]*memifSocket // socket_file_index_by_sock_id
	ifs        []*memifIf              // the interfaces pool, by dev instance
	free       []uint32
	seed       uint32 // the static seed of memif_get_unused_socket_id
	noHost     bool   // Options.NoHost: no folders, no listeners
}

// memifArgs is memif_create_if_args_t.
type memifArgs struct {
	id, socketID       uint32
	secret             string
	master             bool
	mode               memif.MemifMode
	zeroCopy           bool
	rxQueues, txQueues uint8
	log2Ring           uint8
	bufferSize         uint16
	hwAddr             [6]byte
	hwAddrSet          bool
	swIfIndex          uint32
}

func (s *Sim) registerMemif(r *registry) {
	serve(r, s.memifSocketFilenameAddDelV2, &memif.MemifSocketFilenameAddDelV2Reply{})
	serve(r, s.memifSocketFilenameDump, &memif.MemifSocketFilenameDetails{})
	serve(r, s.memifCreateV2, &memif.MemifCreateV2Reply{})
	serve(r, s.memifDelete, &memif.MemifDeleteReply{})
	serve(r, s.memifDump, &memif.MemifDetails{})
}

// memifMain returns the memif state after memif_init: socket id 0 maps to
// memif.sock in VPP's runtime directory.
func (s *Sim) memifMain() *memifState {
	ms := &s.st.memif
	if ms.sockets != nil {
		return ms
	}
	if ms.runtimeDir == "" {
		ms.runtimeDir = s.runtimeDir()
	}
	ms.sockets = map[uint32]*memifSocket{}
	ms.noHost = s.noHost
	if rv := ms.socketFilenameAddDel(true, 0, memifDefaultSocketFilename); rv != 0 {
		s.log.Warn("memif default socket", zap.String("runtime_dir", ms.runtimeDir), zap.Int32("retval", rv))
	}
	return ms
}

// runtimeDir is VPP's runtime directory. A default VPP keeps its API
// socket there (<runtime-dir>/api.sock), so the simulator takes the folder
// of its own API socket; without one it applies unix_config's default:
// /run/vpp for root, /run/user/<uid>/vpp otherwise.
func (s *Sim) runtimeDir() string {
	s.lnMu.Lock()
	apiSock := s.sockPath
	s.lnMu.Unlock()
	if apiSock != "" {
		return filepath.Dir(apiSock)
	}
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Sprintf("/run/user/%d/vpp", uid)
	}
	return "/run/vpp"
}

// memifSocketFilenameAddDelV2 is vl_api_memif_socket_filename_add_del_v2_t_handler:
// id 0 is refused before anything else; ~0 on add picks a free id, which
// the reply carries (also on failure).
func (s *Sim) memifSocketFilenameAddDelV2(m *memif.MemifSocketFilenameAddDelV2) []api.Message {
	ms := s.memifMain()
	id := m.SocketID
	if id == 0 {
		return []api.Message{&memif.MemifSocketFilenameAddDelV2Reply{Retval: int32(api.INVALID_ARGUMENT)}}
	}
	if m.IsAdd && id == noIndex {
		id = ms.unusedSocketID()
	}
	rv := ms.socketFilenameAddDel(m.IsAdd, id, cString(m.SocketFilename, len(m.SocketFilename)))
	return []api.Message{&memif.MemifSocketFilenameAddDelV2Reply{Retval: rv, SocketID: id}}
}

// memifSocketFilenameDump lists the socket table. VPP walks a hash; the
// simulator sends the ids in ascending order.
func (s *Sim) memifSocketFilenameDump(*memif.MemifSocketFilenameDump) []api.Message {
	ms := s.memifMain()
	ids := make([]uint32, 0, len(ms.sockets))
	for id := range ms.sockets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]api.Message, 0, len(ids))
	for _, id := range ids {
		out = append(out, &memif.MemifSocketFilenameDetails{SocketID: id, SocketFilename: cString(ms.sockets[id].filename, 107)})
	}
	return out
}

// unusedSocketID is memif_get_unused_socket_id, with VPP's generator and
// probing order so that ids match a fresh VPP's.
func (ms *memifState) unusedSocketID() uint32 {
	for range 1 << 10 {
		ms.seed = lcg(ms.seed)
		for i := range 1 << 10 {
			ms.seed += uint32((2*(i%2) - 1) * i)
			if ms.seed == noIndex {
				continue
			}
			if _, used := ms.sockets[ms.seed]; !used {
				return ms.seed
			}
		}
	}
	return noIndex
}

// lcg is random_u32 (src/vppinfra/random.h).
func lcg(seed uint32) uint32 { return 1664525*seed + 1013904223 }

// socketFilenameAddDel is memif_socket_filename_add_del, checks in VPP's order.
func (ms *memifState) socketFilenameAddDel(add bool, id uint32, filename string) int32 {
	if id == 0 && !add {
		return int32(api.INVALID_ARGUMENT) // cannot delete socket id 0
	}
	if id == noIndex {
		return int32(api.INVALID_ARGUMENT) // socket id is not specified
	}
	if !add {
		sock, ok := ms.sockets[id]
		if !ok {
			return int32(api.INVALID_ARGUMENT)
		}
		if sock.refCnt > 0 {
			return int32(api.UNEXPECTED_INTF_STATE)
		}
		delete(ms.sockets, id)
		return 0
	}
	if filename == "" {
		return int32(api.INVALID_ARGUMENT)
	}
	name := filename
	if !socketPrefixIsValid(filename) && filename[0] != '/' {
		// Relative names live in the runtime directory; their folders are
		// created now, and a failure is SYSCALL_ERROR_1.
		dir := ms.runtimeDir + "/"
		if i := strings.LastIndexByte(filename, '/'); i >= 0 {
			dir += filename[:i]
		}
		if !ms.noHost && recursiveMkdir(dir) != nil {
			return int32(api.SYSCALL_ERROR_1)
		}
		name = ms.runtimeDir + "/" + filename
	}
	if sock, ok := ms.sockets[id]; ok {
		if sock.filename == name {
			return 0 // an identical add is accepted silently
		}
		return int32(api.ENTRY_ALREADY_EXISTS)
	}
	ms.sockets[id] = &memifSocket{id: id, filename: name}
	return 0
}

// memifCreateV2 is vl_api_memif_create_v2_t_handler. The reply's
// sw_if_index is 0 unless memif_create_if got as far as registering the
// interface (and then it is set even if the listener failed after).
func (s *Sim) memifCreateV2(m *memif.MemifCreateV2) []api.Message {
	idx, rv := s.memifCreateRequest(m)
	return []api.Message{&memif.MemifCreateV2Reply{Retval: rv, SwIfIndex: idx}}
}

func (s *Sim) memifCreateRequest(m *memif.MemifCreateV2) (interface_types.InterfaceIndex, int32) {
	ms := s.memifMain()
	args := memifArgs{
		id: m.ID, socketID: m.SocketID, secret: cString(m.Secret, memifSecretMax),
		master: m.Role == memif.MEMIF_ROLE_API_MASTER, mode: m.Mode, zeroCopy: !m.NoZeroCopy,
	}
	if !args.master {
		args.rxQueues, args.txQueues = memifDefaultQueues, memifDefaultQueues
		if m.RxQueues != 0 {
			args.rxQueues = m.RxQueues
		}
		if m.TxQueues != 0 {
			args.txQueues = m.TxQueues
		}
	}
	ring := uint32(memifDefaultRingSize)
	if m.RingSize != 0 {
		ring = m.RingSize
	}
	if ring&(ring-1) != 0 { // is_pow2
		return 0, int32(api.INVALID_ARGUMENT)
	}
	args.log2Ring = uint8(bits.TrailingZeros32(ring))
	args.bufferSize = memifDefaultBufferSize
	if m.BufferSize != 0 {
		args.bufferSize = m.BufferSize
	}
	if m.HwAddr != (ethernet_types.MacAddress{}) {
		args.hwAddr, args.hwAddrSet = [6]byte(m.HwAddr), true
	}
	rv := s.memifCreateIf(ms, &args)
	return interface_types.InterfaceIndex(args.swIfIndex), rv
}

// memifCreateIf is memif_create_if.
func (s *Sim) memifCreateIf(ms *memifState, args *memifArgs) int32 {
	sock, ok := ms.sockets[args.socketID]
	if !ok {
		return int32(api.INVALID_ARGUMENT) // unknown socket id
	}
	if sock.refCnt > 0 {
		if sock.isListener != args.master {
			return int32(api.SUBIF_ALREADY_EXISTS) // one socket cannot be both master and slave
		}
		if _, dup := sock.ids[args.id]; dup {
			return int32(api.SUBIF_ALREADY_EXISTS)
		}
	}
	if sock.refCnt == 0 {
		sock.ids = map[uint32]uint32{}
		sock.isListener = args.master
	}
	mif := &memifIf{sock: sock, id: args.id, mode: args.mode, secret: args.secret}
	ms.put(mif)

	name := fmt.Sprintf("memif%d/%d", sock.id, args.id)
	switch args.mode {
	case memif.MEMIF_MODE_API_ETHERNET:
		if !args.hwAddrSet {
			// A time-seeded random tail after 02:fe, as VPP draws it.
			rnd := lcg(uint32(uint64(time.Since(s.started).Microseconds())))
			args.hwAddr = [6]byte{0x02, 0xfe, byte(rnd), byte(rnd >> 8), byte(rnd >> 16), byte(rnd >> 24)}
		}
		mif.ifc = s.st.newIface(name, ifMemif)
		mif.ifc.mac = args.hwAddr
	case memif.MEMIF_MODE_API_IP:
		mif.ifc = s.st.newIface(name, ifMemif) // memif-ip hardware class: no MAC
	default:
		// VPP refuses punt/inject here and unwinds through memif_delete_if.
		s.memifDeleteIf(ms, mif)
		return int32(api.SYSCALL_ERROR_2)
	}
	mif.log2Ring, mif.bufferSize = args.log2Ring, args.bufferSize
	mif.rxQueues, mif.txQueues = args.rxQueues, args.txQueues
	args.swIfIndex = mif.ifc.index

	// The first interface on a listener socket starts listening.
	if sock.isListener && sock.refCnt == 0 {
		ln, err := memifListen(sock.filename, s.noHost)
		if err != nil {
			s.log.Info("memif listener failed", zap.String("socket", sock.filename), zap.Error(err))
			s.memifDeleteIf(ms, mif)
			return int32(api.SYSCALL_ERROR_4)
		}
		sock.ln = ln
	}
	sock.refCnt++
	if !args.master {
		mif.slave = true
		mif.zeroCopy = args.zeroCopy
	}
	sock.ids[args.id] = mif.dev
	return 0
}

// put is pool_get on the interfaces pool: the last freed slot first.
func (ms *memifState) put(mif *memifIf) {
	if n := len(ms.free); n > 0 {
		mif.dev = ms.free[n-1]
		ms.free = ms.free[:n-1]
		ms.ifs[mif.dev] = mif
		return
	}
	mif.dev = uint32(len(ms.ifs))
	ms.ifs = append(ms.ifs, mif)
}

// memifDeleteIf is memif_delete_if: the listener closes with the socket's
// last reference; VPP closes the descriptor and leaves the file in place.
func (s *Sim) memifDeleteIf(ms *memifState, mif *memifIf) {
	if mif.ifc != nil {
		s.st.deleteIface(mif.ifc)
		mif.ifc = nil
	}
	sock := mif.sock
	delete(sock.ids, mif.id)
	sock.refCnt--
	if sock.refCnt == 0 {
		if sock.ln != nil {
			sock.ln.close()
			sock.ln = nil
		}
		sock.ids = nil
	}
	ms.ifs[mif.dev] = nil
	ms.free = append(ms.free, mif.dev)
}

// memifDelete is vl_api_memif_delete_t_handler: only memif interfaces.
func (s *Sim) memifDelete(m *memif.MemifDelete) []api.Message {
	ms := s.memifMain()
	mif := ms.byIndex(uint32(m.SwIfIndex))
	if mif == nil {
		return []api.Message{&memif.MemifDeleteReply{Retval: int32(api.INVALID_SW_IF_INDEX)}}
	}
	s.memifDeleteIf(ms, mif)
	return []api.Message{&memif.MemifDeleteReply{}}
}

func (ms *memifState) byIndex(idx uint32) *memifIf {
	for _, mif := range ms.ifs {
		if mif != nil && mif.ifc != nil && mif.ifc.index == idx {
			return mif
		}
	}
	return nil
}

// memifDump is vl_api_memif_dump_t_handler in pool order. ring_size and
// buffer_size come from the negotiated run values: 1 and 0 until a peer
// connects; zero_copy is only ever set on slaves.
func (s *Sim) memifDump(*memif.MemifDump) []api.Message {
	ms := s.memifMain()
	var out []api.Message
	for _, mif := range ms.ifs {
		if mif == nil || mif.ifc == nil {
			continue
		}
		d := &memif.MemifDetails{
			SwIfIndex: interface_types.InterfaceIndex(mif.ifc.index),
			HwAddr:    ethernet_types.MacAddress(mif.ifc.mac),
			ID:        mif.id,
			Role:      memif.MEMIF_ROLE_API_MASTER,
			Mode:      mif.mode,
			ZeroCopy:  mif.zeroCopy,
			SocketID:  mif.sock.id,
			RingSize:  1, // 1 << run.log2_ring_size
			IfName:    cString(mif.ifc.name, 63),
		}
		if mif.slave {
			d.Role = memif.MEMIF_ROLE_API_SLAVE
		}
		if mif.ifc.adminUp {
			d.Flags |= interface_types.IF_STATUS_API_FLAG_ADMIN_UP
		}
		if mif.ifc.link() {
			d.Flags |= interface_types.IF_STATUS_API_FLAG_LINK_UP
		}
		out = append(out, d)
	}
	return out
}

// releaseMemif closes the listeners as the process's exit does. memif has
// no exit hook, so the socket files stay behind, as they do after VPP dies.
func (st *state) releaseMemif() {
	for _, sock := range st.memif.sockets {
		if sock.ln != nil {
			sock.ln.close()
			sock.ln = nil
		}
	}
}
