// Package healthcheck serves the health ports load balancers probe, answering as
// kube-proxy does: the per-service ports of Services with externalTrafficPolicy Local
// (spec.healthCheckNodePort; 200 while the node has local endpoints for the service,
// 503 when it has none, so that an external load balancer only sends traffic to nodes
// that can serve it), and the proxy's own /healthz and /livez (ProxyHealth).
package healthcheck

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Service is what one health check port reports on.
type Service struct {
	Namespace, Name string
	// LocalEndpoints is the number of endpoints of the service on this node.
	LocalEndpoints int
}

func (s Service) String() string { return s.Namespace + "/" + s.Name }

// ErrClosed is returned by Sync after Close.
var ErrClosed = errors.New("healthcheck servers closed")

// readHeaderTimeout bounds how long a probe may take to send its headers, so that idle
// or slow clients cannot pin connections on a port reachable from outside the node.
const readHeaderTimeout = 10 * time.Second

// Servers runs one HTTP listener per healthCheckNodePort.
type Servers struct {
	bind []netip.Addr
	log  *zap.Logger

	mu     sync.Mutex
	ports  map[uint16]*portServer
	closed bool
}

// portServer serves one health check port on every bind address.
type portServer struct {
	port uint16
	// svc is read by the handler on every request and replaced by Sync, so a count
	// update is visible to the next probe without touching the listeners.
	svc  atomic.Pointer[Service]
	http *http.Server
	// done is waited on after http.Close so that no serving goroutine outlives its port.
	done sync.WaitGroup
}

// New returns Servers that listen on each of bindAddresses, or on all addresses of the
// node when bindAddresses is empty (kube-proxy does the same, following nodePortAddresses).
// Nothing is opened until Sync.
func New(bindAddresses []netip.Addr, log *zap.Logger) *Servers {
	if log == nil {
		log = zap.NewNop()
	}
	return &Servers{
		bind:  append([]netip.Addr(nil), bindAddresses...),
		log:   log,
		ports: make(map[uint16]*portServer),
	}
}

// Sync opens listeners for new ports, closes those no longer wanted, and updates counts
// (an update never reopens a listener). Returns one error per port that could not be
// bound or whose entry is invalid, joined, naming the service and port; the others keep
// serving. An invalid entry leaves its port as it was.
func (s *Servers) Sync(want map[uint16]Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}

	for port, ps := range s.ports {
		if _, ok := want[port]; ok {
			continue
		}
		old := *ps.svc.Load()
		ps.close()
		delete(s.ports, port)
		s.log.Info("closed service health check", zap.Stringer("service", old), zap.Uint16("port", port))
	}

	var errs []error
	for port, svc := range want {
		if err := validate(port, svc); err != nil {
			errs = append(errs, err)
			continue
		}
		if ps, ok := s.ports[port]; ok {
			s.update(ps, svc)
			continue
		}
		ps, err := s.open(port, svc)
		if err != nil {
			s.log.Error("cannot open service health check", zap.Stringer("service", svc),
				zap.Uint16("port", port), zap.Error(err))
			errs = append(errs, &PortError{Service: svc, Port: port, Err: err})
			continue
		}
		s.ports[port] = ps
		s.log.Info("opened service health check", zap.Stringer("service", svc),
			zap.Uint16("port", port), zap.Int("localEndpoints", svc.LocalEndpoints))
	}
	return errors.Join(errs...)
}

// PortError is a health check port that could not be opened.
type PortError struct {
	Service Service
	Port    uint16
	Err     error
}

func (e *PortError) Error() string {
	return fmt.Sprintf("health check of service %s on port %d: %v", e.Service, e.Port, e.Err)
}

func (e *PortError) Unwrap() error { return e.Err }

// Ports returns what is served now, keyed by port.
func (s *Servers) Ports() map[uint16]Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint16]Service, len(s.ports))
	for port, ps := range s.ports {
		out[port] = *ps.svc.Load()
	}
	return out
}

// Close stops every listener and waits for their goroutines. Later calls do nothing.
func (s *Servers) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for port, ps := range s.ports {
		ps.close()
		delete(s.ports, port)
	}
	s.log.Info("closed all service health checks")
	return nil
}

func validate(port uint16, svc Service) error {
	switch {
	case port == 0:
		return fmt.Errorf("health check of service %s: healthCheckNodePort is 0", svc)
	case svc.Namespace == "" || svc.Name == "":
		return fmt.Errorf("health check on port %d: service %q has an empty namespace or name", port, svc.String())
	case svc.LocalEndpoints < 0:
		return fmt.Errorf("health check of service %s on port %d: LocalEndpoints is negative (%d)",
			svc, port, svc.LocalEndpoints)
	}
	return nil
}

func (s *Servers) update(ps *portServer, svc Service) {
	old := *ps.svc.Load()
	if old == svc {
		return
	}
	ps.svc.Store(&svc)
	if old.Namespace != svc.Namespace || old.Name != svc.Name {
		// The port now belongs to another service (the old one released it in the same
		// sync); the listener stays, only the answers change.
		s.log.Info("service health check port changed service", zap.Uint16("port", ps.port),
			zap.Stringer("from", old), zap.Stringer("to", svc))
		return
	}
	s.log.Debug("service health check count updated", zap.Stringer("service", svc),
		zap.Uint16("port", ps.port), zap.Int("localEndpoints", svc.LocalEndpoints))
}

// open binds the port on every bind address before serving any, so a port is either
// fully served or not at all.
func (s *Servers) open(port uint16, svc Service) (*portServer, error) {
	addrs := []string{":" + strconv.Itoa(int(port))}
	if len(s.bind) > 0 {
		addrs = addrs[:0]
		for _, a := range s.bind {
			addrs = append(addrs, netip.AddrPortFrom(a, port).String())
		}
	}

	listeners := make([]net.Listener, 0, len(addrs))
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, opened := range listeners {
				_ = opened.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		listeners = append(listeners, l)
	}

	ps := &portServer{port: port}
	ps.svc.Store(&svc)
	errLog, err := zap.NewStdLogAt(s.log, zap.DebugLevel)
	if err != nil {
		errLog = nil // http falls back to the standard logger; not worth failing the port for
	}
	ps.http = &http.Server{
		Handler:           http.HandlerFunc(ps.serveHTTP),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          errLog,
	}
	for _, l := range listeners {
		ps.done.Add(1)
		go func() {
			defer ps.done.Done()
			// Serve returns http.ErrServerClosed once close is called; anything else is a
			// failure of the listener itself.
			if err := ps.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("service health check stopped serving", zap.Stringer("service", ps.svc.Load()),
					zap.Stringer("address", l.Addr()), zap.Error(err))
			}
		}()
	}
	return ps, nil
}

// close stops the listeners and open connections of the port and waits for its goroutines.
func (ps *portServer) close() {
	_ = ps.http.Close() // only reports listener close errors, which leave nothing to undo
	ps.done.Wait()
}
