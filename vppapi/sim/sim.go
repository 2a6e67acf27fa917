// Package sim is a test and demo double of VPP 25.10: it listens on a unix
// socket, speaks VPP's socket API (the sockclnt_create handshake with its
// message table, request/reply, dumps closed by control_ping_reply) and keeps
// the state VPP would keep for the messages kube-vpp uses, answering invalid
// requests with VPP's own retval codes. It forwards no packets; it evaluates
// them against the programmed state on request.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Version is what show_version reports, matching the binapi the agent is built with.
const Version = "25.10-release"

// Options configure a simulator instance.
type Options struct {
	// Logger receives the simulator's own logs; nil discards them.
	Logger *zap.Logger
	// PID is reported as vpe_pid in control_ping_reply; a VPP restart shows
	// as a new PID. Zero picks a random one.
	PID uint32
	// CorruptCRC lists message names whose CRC the message table advertises
	// wrongly, to test the client's compatibility check.
	CorruptCRC []string
	// Interfaces are created at start, as VPP's startup.conf creates NICs
	// (for example the uplink); they carry no tag, like any foreign object.
	Interfaces []InterfaceSpec
	// NoVhostNet makes tap_create_v3 fail as VPP does on a host without
	// /dev/vhost-net (SYSCALL_ERROR_1, after the tap device was made). By
	// default the simulator does without vhost-net, which it never needs.
	NoVhostNet bool
	// NoHost keeps the simulator off the host: tap_create_v3,
	// af_packet_create_v3, memif and vhost-user make only VPP's side of
	// their interfaces. No network namespace is opened, no device, socket
	// or folder is made, and af_packet does not need its host interface to
	// exist. Replies and dumps are what they would be with the host side
	// in place: the same checks (less those of host state), names and
	// sw_if_index allocation. For offline use (kube-vppctl trace
	// --manifests), where the whole node is simulated in one process.
	NoHost bool
}

// InterfaceSpec describes an interface present at start, outside the agent's ownership.
type InterfaceSpec struct {
	Name      string
	Addresses []string // CIDR notation, for example 192.168.10.5/24
	Up        bool
}

// Sim is one simulated VPP instance. Its state lives only as long as the
// value: a new Sim on the same socket is a restarted VPP.
type Sim struct {
	log        *zap.Logger
	pid        uint32
	started    time.Time
	noVhostNet bool
	noHost     bool

	table    *msgTable
	handlers map[uint16]*handler

	// mu serialises API handling as VPP's main thread does.
	mu      sync.Mutex
	st      *state
	calls   map[string]int
	clients uint32

	lnMu     sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	closed   bool
	sockPath string
}

// New builds a simulator with its message table and start-up state.
func New(opts Options) (*Sim, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	pid := opts.PID
	if pid == 0 {
		pid = rand.Uint32N(1<<22) + 1
	}
	s := &Sim{
		log:        log,
		noVhostNet: opts.NoVhostNet,
		noHost:     opts.NoHost,
		pid:        pid,
		started:    time.Now(),
		handlers:   map[uint16]*handler{},
		calls:      map[string]int{},
		conns:      map[net.Conn]struct{}{},
		st:         newState(),
	}
	reg := newRegistry()
	s.registerCore(reg)
	s.registerInterfaces(reg)
	s.registerIP(reg)
	s.registerTap(reg)
	s.registerAfPacket(reg)
	s.registerUnnumbered(reg)
	s.registerMemif(reg)
	s.registerVhostUser(reg)
	s.registerNAT44ED(reg)
	s.registerACL(reg)
	table, handlers, err := reg.build(opts.CorruptCRC)
	if err != nil {
		return nil, err
	}
	s.table, s.handlers = table, handlers
	for _, spec := range opts.Interfaces {
		if err := s.st.addStartupInterface(spec); err != nil {
			return nil, fmt.Errorf("start-up interface %q: %w", spec.Name, err)
		}
	}
	return s, nil
}

// Listen creates the API socket at path (replacing a stale one, as VPP does)
// and serves clients until Close.
func (s *Sim) Listen(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("socket folder for %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	s.lnMu.Lock()
	s.ln, s.sockPath = ln, path
	s.lnMu.Unlock()
	s.log.Info("simulated VPP listening", zap.String("socket", path), zap.Uint32("pid", s.pid))
	s.wg.Add(1)
	go s.acceptLoop(ln)
	return nil
}

// Close stops serving, drops every client connection (as a dying VPP does)
// and removes the socket file.
func (s *Sim) Close() error {
	s.lnMu.Lock()
	if s.closed {
		s.lnMu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.lnMu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	s.st.release()
	s.mu.Unlock()
	if s.sockPath != "" {
		_ = os.Remove(s.sockPath)
	}
	return err
}

// Run listens on path and serves until ctx ends.
func (s *Sim) Run(ctx context.Context, path string) error {
	if err := s.Listen(path); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// PID is the vpe_pid this instance reports.
func (s *Sim) PID() uint32 { return s.pid }

// Calls returns how many requests of the named message were handled.
func (s *Sim) Calls(msgName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[msgName]
}

// WriteCalls returns how many handled requests changed or could change state.
func (s *Sim) WriteCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, c := range s.calls {
		if isWrite(name) {
			n += c
		}
	}
	return n
}

// CallCounts returns a copy of the per-message request counts.
func (s *Sim) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}
