// Package simtest runs a simulated VPP with a connected vppapi.Client for
// driver and agent tests.
package simtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// Env is a simulator and a client connected to it.
type Env struct {
	Sim    *sim.Sim
	Client *vppapi.Client
	Path   string
	opts   sim.Options
	t      testing.TB
}

// Start runs a simulator on a fresh socket and a connected client; both stop
// when the test ends. The client checks only the core messages: driver tests
// exercise their own messages directly.
func Start(t testing.TB, opts sim.Options) *Env {
	t.Helper()
	e := &Env{Path: filepath.Join(t.TempDir(), "api.sock"), opts: opts, t: t}
	e.Sim = e.newSim()
	e.Client = vppapi.New(vppapi.Options{
		Socket: e.Path, Messages: vppapi.CoreMessages(), Logger: zaptest.NewLogger(t),
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, HealthInterval: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Client.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	e.WaitConnected()
	return e
}

func (e *Env) newSim() *sim.Sim {
	e.t.Helper()
	s, err := sim.New(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := s.Listen(e.Path); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = s.Close() })
	return s
}

// WaitConnected blocks until the client signals a (re)connection.
func (e *Env) WaitConnected() {
	e.t.Helper()
	select {
	case <-e.Client.Resync():
	case <-time.After(10 * time.Second):
		e.t.Fatal("client did not connect to the simulator")
	}
}

// Restart kills the simulator and starts a fresh one (empty state, new PID)
// on the same socket, then waits for the client to reconnect.
func (e *Env) Restart() {
	e.t.Helper()
	if err := e.Sim.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.opts.PID = e.Sim.PID() + 1
	e.Sim = e.newSim()
	e.WaitConnected()
}

// Writes returns the simulator's count of state-changing requests.
func (e *Env) Writes() int { return e.Sim.WriteCalls() }
