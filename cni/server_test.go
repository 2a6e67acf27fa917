package cni

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"go.uber.org/zap/zaptest"

	types100 "github.com/containernetworking/cni/pkg/types/100"
)

type handlerFunc func(ctx context.Context, req *Request) (*types100.Result, error)

func (f handlerFunc) Serve(ctx context.Context, req *Request) (*types100.Result, error) {
	return f(ctx, req)
}

// startServer serves h on a socket in a fresh directory until the test ends.
func startServer(t *testing.T, h Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "cni.sock")
	srv := NewServer(path, h, zaptest.NewLogger(t))
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func addRequest() *Request {
	return &Request{
		Command:     CommandAdd,
		ContainerID: "0123456789abcdef0123",
		Netns:       "/var/run/netns/cni-1",
		IfName:      "eth0",
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
		Path:        "/opt/cni/bin",
		Config:      json.RawMessage(`{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni"}`),
	}
}

func TestServerRoundTrip(t *testing.T) {
	var got *Request
	path := startServer(t, handlerFunc(func(ctx context.Context, req *Request) (*types100.Result, error) {
		got = req
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("handler context has no deadline")
		}
		return &types100.Result{ // CNIVersion left empty: the server fills in 1.1.0
			Interfaces: []*types100.Interface{{Name: "eth0", Sandbox: req.Netns}},
			IPs:        []*types100.IPConfig{{Address: mustCIDR(t, "10.1.0.5/24"), Interface: types100.Int(0)}},
		}, nil
	}))
	want := addRequest()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := NewClient(path).Do(ctx, want)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if reply.Error != nil {
		t.Fatalf("reply error: %v", reply.Error)
	}
	res, err := types100.NewResult(reply.Result) // fails unless cniVersion is 1.0.0 or 1.1.0
	if err != nil {
		t.Fatalf("result %s: %v", reply.Result, err)
	}
	r := res.(*types100.Result)
	if r.CNIVersion != "1.1.0" || len(r.IPs) != 1 || r.IPs[0].Address.String() != "10.1.0.5/24" {
		t.Fatalf("result = %s", reply.Result)
	}
	if got.Command != want.Command || got.ContainerID != want.ContainerID || got.Netns != want.Netns ||
		got.IfName != want.IfName || got.Args != want.Args || got.Path != want.Path || !bytes.Equal(got.Config, want.Config) {
		t.Fatalf("handler saw %+v, want %+v", got, want)
	}
}

func TestServerSocketMode(t *testing.T) {
	path := startServer(t, handlerFunc(func(context.Context, *Request) (*types100.Result, error) { return nil, nil }))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %s, want socket 0600", fi.Mode())
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if dir.Mode().Perm() != 0o755 {
		t.Fatalf("created directory mode = %s, want 0755", dir.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("socket directory holds %d entries, want just the socket (no temporary left)", len(entries))
	}
}

// unixHTTP is a plain HTTP client on the socket, for requests the Client never sends.
func unixHTTP(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func TestServerRejectsGarbage(t *testing.T) {
	called := false
	path := startServer(t, handlerFunc(func(context.Context, *Request) (*types100.Result, error) {
		called = true
		return nil, nil
	}))
	valid := func(edit func(r *Request)) string {
		r := addRequest()
		edit(r)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		raw      string // sent as is on a bare connection instead of an HTTP request
		timeout  string // value of the timeout header
		wantCode uint
	}{
		{name: "not HTTP", raw: "hello\n", wantCode: types.ErrDecodingFailure},
		{name: "non-JSON body", method: "POST", path: callPath, body: "hello", wantCode: types.ErrDecodingFailure},
		{name: "oversize body", method: "POST", path: callPath, body: strings.Repeat("x", MaxRequestBytes+1), wantCode: types.ErrDecodingFailure},
		{name: "GET", method: "GET", path: callPath, wantCode: types.ErrDecodingFailure},
		{name: "unknown path", method: "POST", path: "/v2/other", body: valid(func(*Request) {}), wantCode: types.ErrDecodingFailure},
		{name: "missing command", method: "POST", path: callPath, body: valid(func(r *Request) { r.Command = "" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "unknown command", method: "POST", path: callPath, body: valid(func(r *Request) { r.Command = "FROB" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "VERSION is not for the agent", method: "POST", path: callPath, body: valid(func(r *Request) { r.Command = "VERSION" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "ADD without containerID", method: "POST", path: callPath, body: valid(func(r *Request) { r.ContainerID = "" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "DEL without containerID", method: "POST", path: callPath, body: valid(func(r *Request) { r.Command, r.ContainerID = CommandDel, "" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "containerID with a slash", method: "POST", path: callPath, body: valid(func(r *Request) { r.ContainerID = "../etc" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "ADD without netns", method: "POST", path: callPath, body: valid(func(r *Request) { r.Netns = "" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "ADD without ifName", method: "POST", path: callPath, body: valid(func(r *Request) { r.IfName = "" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "ifName too long", method: "POST", path: callPath, body: valid(func(r *Request) { r.IfName = "eth0123456789abcd" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "malformed args", method: "POST", path: callPath, body: valid(func(r *Request) { r.Args = "K8S_POD_NAME" }), wantCode: types.ErrInvalidEnvironmentVariables},
		{name: "config a string", method: "POST", path: callPath, body: valid(func(r *Request) { r.Config = json.RawMessage(`"x"`) }), wantCode: types.ErrInvalidNetworkConfig},
		{name: "config missing", method: "POST", path: callPath, body: valid(func(r *Request) { r.Config = nil }), wantCode: types.ErrInvalidNetworkConfig},
		{name: "bad timeout header", method: "POST", path: callPath, body: valid(func(*Request) {}), timeout: "soon", wantCode: types.ErrDecodingFailure},
		{name: "negative timeout header", method: "POST", path: callPath, body: valid(func(*Request) {}), timeout: "-1s", wantCode: types.ErrDecodingFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp *http.Response
			if tt.raw != "" {
				conn, err := net.Dial("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				// A deadline so a server that waits for more turns into a failure, not a hang.
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(conn, tt.raw); err != nil {
					t.Fatal(err)
				}
				resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatalf("no HTTP reply: %v", err)
				}
			} else {
				req, err := http.NewRequest(tt.method, "http://agent"+tt.path, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				if tt.timeout != "" {
					req.Header.Set(timeoutHeader, tt.timeout)
				}
				resp, err = unixHTTP(path).Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", tt.method, tt.path, err)
				}
			}
			defer resp.Body.Close()
			var reply Reply
			if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
				t.Fatalf("reply body is not a Reply: %v", err)
			}
			if resp.StatusCode != http.StatusBadRequest || reply.Error == nil || reply.Error.Code != tt.wantCode {
				t.Fatalf("HTTP %d, error %+v; want 400 with CNI error code %d", resp.StatusCode, reply.Error, tt.wantCode)
			}
		})
	}
	if called {
		t.Fatal("handler was called for a rejected request")
	}
}

func TestServerHandlerErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode uint
	}{
		{name: "plugin code", err: Errorf(CodeVPP, "sw_interface_add_del_address: -2"), wantCode: CodeVPP},
		{name: "wrapped plugin code", err: fmt.Errorf("pod default/web-0: %w", Errorf(CodeAnnotation, "bad")), wantCode: CodeAnnotation},
		{name: "spec code", err: Errorf(types.ErrTryAgainLater, "not ready"), wantCode: types.ErrTryAgainLater},
		{name: "code 50 plugin not available", err: Errorf(50, "agent not ready"), wantCode: 50},
		{name: "plain error", err: errors.New("disk on fire"), wantCode: CodeInternal},
		{name: "ADD without result", err: nil, wantCode: CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := startServer(t, handlerFunc(func(context.Context, *Request) (*types100.Result, error) {
				return nil, tt.err
			}))
			reply, err := NewClient(path).Do(context.Background(), addRequest())
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if reply.Error == nil || reply.Error.Code != tt.wantCode {
				t.Fatalf("reply error = %+v, want code %d", reply.Error, tt.wantCode)
			}
			if tt.err != nil && reply.Error.Msg != tt.err.Error() {
				t.Fatalf("reply message = %q, want %q", reply.Error.Msg, tt.err.Error())
			}
		})
	}
}

func TestServerRecoversPanic(t *testing.T) {
	path := startServer(t, handlerFunc(func(_ context.Context, req *Request) (*types100.Result, error) {
		if req.Command == CommandAdd {
			panic("nil map")
		}
		return nil, nil
	}))
	c := NewClient(path)
	reply, err := c.Do(context.Background(), addRequest())
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if reply.Error == nil || reply.Error.Code != CodeInternal || !strings.Contains(reply.Error.Msg, "nil map") {
		t.Fatalf("reply error = %+v, want CodeInternal naming the panic", reply.Error)
	}
	// The server lives on.
	del := addRequest()
	del.Command = CommandDel
	reply, err = c.Do(context.Background(), del)
	if err != nil || reply.Error != nil {
		t.Fatalf("DEL after panic: %v %+v", err, reply)
	}
}

func TestServerPassesClientDeadline(t *testing.T) {
	got := make(chan time.Duration, 1)
	path := startServer(t, handlerFunc(func(ctx context.Context, _ *Request) (*types100.Result, error) {
		dl, _ := ctx.Deadline()
		got <- time.Until(dl)
		return nil, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	del := addRequest()
	del.Command = CommandDel
	if _, err := NewClient(path).Do(ctx, del); err != nil {
		t.Fatalf("Do: %v", err)
	}
	// The handler's deadline is the client's, not DefaultAgentTimeout (60s).
	if left := <-got; left <= 0 || left > 3*time.Second {
		t.Fatalf("handler deadline in %s, want within the client's 3s", left)
	}
}

func TestServerFinishesCallsInFlight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cni.sock")
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := NewServer(path, handlerFunc(func(ctx context.Context, _ *Request) (*types100.Result, error) {
		close(entered)
		<-release
		return nil, ctx.Err() // nil unless the server cancelled the call
	}), zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { served <- srv.Serve(ctx) }()

	replied := make(chan *Reply, 1)
	go func() {
		del := addRequest()
		del.Command = CommandDel
		reply, err := NewClient(path).Do(context.Background(), del)
		if err != nil {
			reply = &Reply{Error: AsError(err)}
		}
		replied <- reply
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a call was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if reply := <-replied; reply.Error != nil {
		t.Fatalf("in-flight call failed: %+v", reply.Error)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after Serve: %v", err)
	}
}

func TestListenStaleAndLive(t *testing.T) {
	nop := handlerFunc(func(context.Context, *Request) (*types100.Result, error) { return nil, nil })
	log := zaptest.NewLogger(t)

	t.Run("stale socket replaced", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cni.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close() // the file stays, nobody answers: a crashed agent's socket
		srv := NewServer(path, nop, log)
		if err := srv.Listen(); err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		srv.ln.Close()
	})
	t.Run("live server refused", func(t *testing.T) {
		path := startServer(t, nop)
		srv := NewServer(path, nop, log)
		if err := srv.Listen(); err == nil || !strings.Contains(err.Error(), "another server") {
			t.Fatalf("Listen over a live socket: err = %v, want refusal", err)
		}
		// The live server still answers.
		del := addRequest()
		del.Command = CommandDel
		if _, err := NewClient(path).Do(context.Background(), del); err != nil {
			t.Fatalf("live server broken by the second Listen: %v", err)
		}
	})
	t.Run("regular file refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cni.sock")
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := NewServer(path, nop, log).Listen(); err == nil {
			t.Fatal("Listen over a regular file succeeded")
		}
		if b, _ := os.ReadFile(path); string(b) != "x" {
			t.Fatal("regular file was replaced")
		}
	})
}

func TestClientUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.sock")
	_, err := NewClient(path).Do(context.Background(), addRequest())
	var unreachable *UnreachableError
	if !errors.As(err, &unreachable) || unreachable.Path != path || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Do on a missing socket: err = %v, want *UnreachableError for %s wrapping ENOENT", err, path)
	}
}

func TestServerConcurrentCalls(t *testing.T) {
	path := startServer(t, handlerFunc(func(_ context.Context, req *Request) (*types100.Result, error) {
		return &types100.Result{Interfaces: []*types100.Interface{{Name: req.IfName, Sandbox: req.ContainerID}}}, nil
	}))
	c := NewClient(path)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			req := addRequest()
			req.ContainerID = fmt.Sprintf("container%d", i)
			reply, err := c.Do(context.Background(), req)
			switch {
			case err != nil:
				errs <- err
			case !bytes.Contains(reply.Result, []byte(req.ContainerID)):
				errs <- fmt.Errorf("call for %s got %s", req.ContainerID, reply.Result)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func mustCIDR(t *testing.T, s string) net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return *n
}
