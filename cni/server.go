package cni

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"go.uber.org/zap"

	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// MaxRequestBytes limits the body of one call; a network configuration is a few KiB.
const MaxRequestBytes = 1 << 20

const (
	// callPath is the one URL path the server answers.
	callPath = "/v1/cni"
	// timeoutHeader carries the time the client still waits, as a Go duration.
	timeoutHeader = "Kube-Vpp-Timeout"

	maxHeaderBytes = 64 << 10
	// readTimeout bounds reading one request; the plugin sends it at once.
	readTimeout  = 10 * time.Second
	writeTimeout = 10 * time.Second
	// maxCallTimeout caps a handler call whatever the client asks for, so a
	// stuck handler cannot hold a connection (and shutdown) forever.
	maxCallTimeout = 10 * time.Minute
	// lingerTimeout bounds draining unread input after an early error reply,
	// so the client reads the reply instead of a connection reset.
	lingerTimeout = time.Second
)

// Server accepts CNI calls from the plugin on a unix socket and hands them to a
// Handler. Each connection carries one call (HTTP/1.1 with Connection: close).
// The server reads requests itself with net/http's parser rather than using
// http.Server, so that even bytes that are not HTTP get a CNI error as the body
// of the 400 reply, which the plugin can print.
type Server struct {
	path    string
	handler Handler
	log     *zap.Logger

	ln   *net.UnixListener
	file os.FileInfo

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	draining bool
}

// NewServer returns a server for the socket at path. Call Listen to create the
// socket, then Serve.
func NewServer(path string, h Handler, log *zap.Logger) *Server {
	return &Server{
		path:    path,
		handler: h,
		log:     log.With(zap.String("socket", path)),
		conns:   make(map[net.Conn]struct{}),
	}
}

// Listen creates the socket with mode 0600 (root only) and its directory with 0755
// if missing. It replaces a stale socket file but fails if another server answers
// on it. Listen and Serve must be called from one goroutine.
func (s *Server) Listen() error {
	if s.ln != nil {
		return fmt.Errorf("CNI socket %s: already listening", s.path)
	}
	ln, fi, err := listenUnix(s.path)
	if err != nil {
		return err
	}
	s.ln, s.file = ln, fi
	s.log.Info("CNI server listening")
	return nil
}

// Serve accepts calls until ctx ends, then stops accepting, lets calls in flight
// finish, and removes the socket. It calls Listen first if that was not done.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ln := s.ln
	var wg sync.WaitGroup
	defer func() {
		_ = ln.Close()
		wg.Wait()
		removeIfSame(s.path, s.file)
		s.log.Info("CNI server stopped")
	}()
	stop := context.AfterFunc(ctx, func() {
		_ = ln.Close()
		s.drain()
	})
	defer stop()

	backoff := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("CNI socket %s: %w", s.path, err)
			}
			// Usually out of file descriptors: wait for some to be freed.
			s.log.Warn("CNI server accept failed", zap.Error(err), zap.Duration("retryIn", backoff))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !s.track(conn) {
			_ = conn.Close()
			continue
		}
		wg.Go(func() {
			defer s.untrack(conn)
			s.serveConn(conn)
		})
	}
}

func (s *Server) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, conn)
}

// drain interrupts connections still waiting for their request. It moves only
// the read deadline: a call whose request was read runs on and writes its reply.
func (s *Server) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	for conn := range s.conns {
		_ = conn.SetReadDeadline(time.Now())
	}
}

// serveConn reads one call, runs it and writes the reply.
func (s *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	start := time.Now()
	req, timeout, cniErr := readRequest(conn)
	if cniErr != nil {
		s.log.Warn("CNI request rejected", zap.Uint("code", cniErr.Code), zap.String("error", cniErr.Msg))
		s.writeReply(conn, http.StatusBadRequest, &Reply{Error: cniErr})
		lingerClose(conn)
		return
	}
	reply, status := s.call(req, timeout)
	s.writeReply(conn, status, reply)
	s.logCall(req, reply, time.Since(start))
}

// readRequest reads and checks one HTTP request carrying a Request. Every failure
// is a CNI error meant for a 400 reply.
func readRequest(conn net.Conn) (*Request, time.Duration, *types.Error) {
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	// Limit the header; the body has its own limit below.
	lr := &io.LimitedReader{R: conn, N: maxHeaderBytes}
	hreq, err := http.ReadRequest(bufio.NewReader(lr))
	if err != nil {
		return nil, 0, Errorf(types.ErrDecodingFailure, "malformed HTTP request: %v", err)
	}
	lr.N = math.MaxInt64
	if hreq.Method != http.MethodPost {
		return nil, 0, Errorf(types.ErrDecodingFailure, "HTTP method %s not allowed, CNI calls are POST %s", hreq.Method, callPath)
	}
	if hreq.URL.Path != callPath {
		return nil, 0, Errorf(types.ErrDecodingFailure, "unknown path %q, CNI calls are POST %s", hreq.URL.Path, callPath)
	}
	timeout := DefaultAgentTimeout
	if v := hreq.Header.Get(timeoutHeader); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, 0, Errorf(types.ErrDecodingFailure, "header %s: %q is not a positive duration", timeoutHeader, v)
		}
		timeout = min(d, maxCallTimeout)
	}
	tooLarge := Errorf(types.ErrDecodingFailure, "request body exceeds the limit of %d bytes", MaxRequestBytes)
	if hreq.ContentLength > MaxRequestBytes {
		return nil, 0, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(hreq.Body, MaxRequestBytes+1))
	if err != nil {
		return nil, 0, Errorf(types.ErrDecodingFailure, "reading request body: %v", err)
	}
	if len(body) > MaxRequestBytes {
		return nil, 0, tooLarge
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, 0, Errorf(types.ErrDecodingFailure, "request body is not a CNI request: %v", err)
	}
	if err := req.Validate(); err != nil {
		return nil, 0, AsError(err)
	}
	return &req, timeout, nil
}

// call runs the handler with its own deadline. It is not tied to Serve's context:
// a call in flight when the server stops still finishes.
func (s *Server) call(req *Request, timeout time.Duration) (reply *Reply, status int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("CNI handler panicked", append(callFields(req),
				zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))...)
			reply = &Reply{Error: Errorf(CodeInternal, "internal error in the kube-vpp agent serving %s: %v", req.Command, p)}
			status = http.StatusInternalServerError
		}
	}()
	res, err := s.handler.Serve(ctx, req)
	if err != nil {
		return &Reply{Error: AsError(err)}, http.StatusOK
	}
	if res == nil {
		if req.Command == CommandAdd {
			return &Reply{Error: Errorf(CodeInternal, "ADD for container %s: the agent produced no result", ShortID(req.ContainerID))},
				http.StatusInternalServerError
		}
		return &Reply{}, http.StatusOK
	}
	out := *res
	if out.CNIVersion == "" {
		out.CNIVersion = types100.ImplementedSpecVersion
	}
	data, err := json.Marshal(&out)
	if err != nil {
		return &Reply{Error: Errorf(CodeInternal, "%s for container %s: encoding the result: %v", req.Command, ShortID(req.ContainerID), err)},
			http.StatusInternalServerError
	}
	return &Reply{Result: data}, http.StatusOK
}

func (s *Server) writeReply(conn net.Conn, status int, reply *Reply) {
	data, err := json.Marshal(reply)
	if err != nil {
		// A Reply holds only raw JSON and strings; this cannot fail in practice.
		status = http.StatusInternalServerError
		data = []byte(`{"error":{"code":` + strconv.FormatUint(uint64(CodeInternal), 10) + `,"msg":"encoding the reply failed"}}`)
	}
	resp := &http.Response{
		StatusCode:    status,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(data)),
		ContentLength: int64(len(data)),
		Close:         true,
	}
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := resp.Write(conn); err != nil {
		s.log.Warn("CNI reply not delivered", zap.Error(err))
	}
}

// lingerClose half-closes the connection and drains what the client still sends,
// for a short time, so an early error reply is read rather than lost to a reset.
func lingerClose(conn net.Conn) {
	if uc, ok := conn.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 4*MaxRequestBytes))
}

func (s *Server) logCall(req *Request, reply *Reply, took time.Duration) {
	fields := append(callFields(req), zap.Duration("duration", took))
	if reply.Error != nil {
		s.log.Info("CNI call failed", append(fields,
			zap.Uint("code", reply.Error.Code), zap.String("error", reply.Error.Error()))...)
		return
	}
	s.log.Info("CNI call done", fields...)
}

func callFields(req *Request) []zap.Field {
	fields := []zap.Field{zap.String("command", req.Command)}
	if req.ContainerID != "" {
		fields = append(fields, zap.String("containerID", ShortID(req.ContainerID)))
	}
	// Validate already checked the args, so this only misses absent keys.
	if args, err := ParseArgs(req.Args); err == nil {
		if ns, name := args[ArgPodNamespace], args[ArgPodName]; ns != "" || name != "" {
			fields = append(fields, zap.String("namespace", ns), zap.String("pod", name))
		}
	}
	return fields
}
