// Package ctl is the agent's local control API that kube-vppctl talks to:
// JSON over HTTP on a unix socket that only root may open.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/bgp"
	"github.com/kube-vpp/kube-vpp/cni/pods"
	"github.com/kube-vpp/kube-vpp/services"
)

// Backend answers the control requests; the agent implements it.
type Backend interface {
	Version(ctx context.Context) VersionInfo
	Status(ctx context.Context) StatusInfo
	BGP(ctx context.Context) (bgp.Status, error)
	Pods(ctx context.Context) ([]pods.PodStatus, error)
	CLI(ctx context.Context, cmd string) (string, error)
	Services(ctx context.Context) ([]services.Status, error)
	Trace(ctx context.Context, req TraceRequest) (TraceReply, error)
	Events(ctx context.Context) []EventInfo
	Policies(ctx context.Context) ([]PodPolicy, error)
}

// PodPolicy is one local pod's policy tables.
type PodPolicy struct {
	Pod        string  `json:"pod"`
	Ingress    string  `json:"ingress,omitempty"` // ACL tag on the pod's output, "" when not isolated
	IngressACL *uint32 `json:"ingressACL,omitempty"`
	Egress     string  `json:"egress,omitempty"` // ACL tag on the pod's input
	EgressACL  *uint32 `json:"egressACL,omitempty"`
	// Firewall is the service firewall's ACL tag, first in the pod's
	// input list (docs/services.md).
	Firewall    string   `json:"firewall,omitempty"`
	FirewallACL *uint32  `json:"firewallACL,omitempty"`
	Policies    []string `json:"policies,omitempty"`
}

// VersionInfo is the answer to `kube-vppctl version`.
type VersionInfo struct {
	Agent        string `json:"agent"`
	BuiltForVPP  string `json:"builtForVPP"`
	VPPConnected bool   `json:"vppConnected"`
	VPP          string `json:"vpp,omitempty"`
	VPPBuildDate string `json:"vppBuildDate,omitempty"`
	VPPPID       uint32 `json:"vppPID,omitempty"`
}

// StatusInfo is the answer to `kube-vppctl status`.
type StatusInfo struct {
	// Ready is true once VPP is connected and the first sync succeeded.
	Ready         bool      `json:"ready"`
	Reason        string    `json:"reason,omitempty"` // why not ready
	VPPConnected  bool      `json:"vppConnected"`
	Syncs         int       `json:"syncs"`
	LastSync      time.Time `json:"lastSync,omitzero"`
	LastSyncError string    `json:"lastSyncError,omitempty"`
}

type cliRequest struct {
	Command string `json:"command"`
}

type cliReply struct {
	Output string `json:"output"`
}

type errorReply struct {
	Error string `json:"error"`
}

// MaxCommand bounds a CLI command; VPP's own CLI input is far shorter.
const MaxCommand = 4096

// Server serves the control API.
type Server struct {
	path    string
	backend Backend
	log     *zap.Logger
	ln      net.Listener
}

// NewServer returns a server for the socket at path.
func NewServer(path string, b Backend, log *zap.Logger) *Server {
	return &Server{path: path, backend: b, log: log.Named("ctl")}
}

// Listen creates the socket, readable and writable by root only: the API
// passes arbitrary commands to VPP.
func (s *Server) Listen() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("control socket folder %s: %w", filepath.Dir(s.path), err)
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale control socket %s: %w", s.path, err)
	}
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	if err := os.Chmod(s.path, 0o600); err != nil {
		_ = ln.Close()
		return fmt.Errorf("control socket %s: %w", s.path, err)
	}
	s.ln = ln
	return nil
}

// Serve answers requests until ctx ends; Listen must have succeeded.
func (s *Server) Serve(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.backend.Version(r.Context()))
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.backend.Status(r.Context()))
	})
	mux.HandleFunc("GET /v1/bgp", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.backend.BGP(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorReply{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/pods", func(w http.ResponseWriter, r *http.Request) {
		list, err := s.backend.Pods(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorReply{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		list, err := s.backend.Services(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorReply{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("POST /v1/trace", s.handleTrace)
	mux.HandleFunc("GET /v1/policies", func(w http.ResponseWriter, r *http.Request) {
		list, err := s.backend.Policies(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, errorReply{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.backend.Events(r.Context()))
	})
	mux.HandleFunc("POST /v1/cli", s.handleCLI)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		_ = os.Remove(s.path)
		return nil
	}
}

func (s *Server) handleCLI(w http.ResponseWriter, r *http.Request) {
	var req cliRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2*MaxCommand))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorReply{fmt.Sprintf("bad request body: %v", err)})
		return
	}
	if req.Command == "" || len(req.Command) > MaxCommand {
		writeJSON(w, http.StatusBadRequest, errorReply{fmt.Sprintf("command must be 1 to %d bytes", MaxCommand)})
		return
	}
	out, err := s.backend.CLI(r.Context(), req.Command)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, errorReply{err.Error()})
		return
	}
	s.log.Debug("cli passed to VPP", zap.String("command", req.Command))
	writeJSON(w, http.StatusOK, cliReply{Output: out})
}

func (s *Server) handleTrace(w http.ResponseWriter, r *http.Request) {
	var req TraceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorReply{fmt.Sprintf("bad request body: %v", err)})
		return
	}
	if err := req.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, errorReply{err.Error()})
		return
	}
	rep, err := s.backend.Trace(r.Context(), req)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, errorReply{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
