package status

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

const (
	// shutdownTimeout bounds how long in-flight requests may finish once the
	// context is done; probes and scrapes are short.
	shutdownTimeout = 5 * time.Second
	// readHeaderTimeout keeps a stalled client from holding a connection.
	readHeaderTimeout = 5 * time.Second
)

// Server serves /healthz, /readyz and /metrics.
//
// Use Run to listen and serve in one call. To learn the bound address first
// (e.g. with port 0 in tests), call Listen, read Addr, then call Serve.
type Server struct {
	addr string
	log  *zap.Logger
	srv  *http.Server

	mu sync.Mutex
	ln net.Listener // set by Listen
}

// NewServer returns a server for addr (host:port). ready reports whether the
// agent is ready to serve; nil means always ready. m may be nil, in which case
// /metrics is not served.
func NewServer(addr string, m *Metrics, ready func() error, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("status")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				log.Debug("readiness probe failed", zap.Error(err))
				writeText(w, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		writeText(w, http.StatusOK, "ok")
	})
	if m != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
			ErrorLog:      zap.NewStdLog(log),
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	return &Server{
		addr: addr,
		log:  log,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: readHeaderTimeout,
			ErrorLog:          zap.NewStdLog(log),
		},
	}
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, body)
}

// Listen binds the server's address. It may be called once, before Serve.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return fmt.Errorf("status server on %s: already listening", s.ln.Addr())
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("status server: listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the address the server listens on once Listen succeeded (with
// the actual port when the configured one was 0), else the configured address.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Serve serves on the listener bound by Listen until ctx is done, then shuts
// down, giving in-flight requests a few seconds to finish. It returns nil
// after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("status server: Serve called before Listen")
	}
	s.log.Info("status server listening", zap.String("addr", ln.Addr().String()))

	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("status server on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) && serveErr != nil {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("status server on %s: shut down: %w", ln.Addr(), err)
	}
	s.log.Info("status server stopped", zap.String("addr", ln.Addr().String()))
	return nil
}

// Run listens and serves until ctx is done; see Serve.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve(ctx)
}
