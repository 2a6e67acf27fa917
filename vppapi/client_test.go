package vppapi_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/binapi/vlib"
	"go.fd.io/govpp/binapi/vpe"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

type recorder struct {
	mu         sync.Mutex
	ups, downs int
	reconnects []bool
	writes     map[string]int
	reads      map[string]int
}

func newRecorder() *recorder {
	return &recorder{writes: map[string]int{}, reads: map[string]int{}}
}

func (r *recorder) Connected(up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up {
		r.ups++
	} else {
		r.downs++
	}
}

func (r *recorder) Reconnected(restarted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconnects = append(r.reconnects, restarted)
}

func (r *recorder) APICall(name string, write bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if write {
		r.writes[name]++
	} else {
		r.reads[name]++
	}
}

func startSim(t *testing.T, path string, opts sim.Options) *sim.Sim {
	t.Helper()
	s, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func runClient(t *testing.T, opts vppapi.Options) (*vppapi.Client, <-chan error) {
	t.Helper()
	if opts.BackoffInitial == 0 {
		opts.BackoffInitial, opts.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = 50 * time.Millisecond
	}
	c := vppapi.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		done <- c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Error("client did not stop after cancel")
		}
	})
	return c, done
}

func waitResync(t *testing.T, c *vppapi.Client) {
	t.Helper()
	select {
	case <-c.Resync():
	case <-time.After(10 * time.Second):
		t.Fatal("no resync signal: the client did not (re)connect")
	}
}

func TestConnectsAndReportsVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	s := startSim(t, path, sim.Options{PID: 100})
	rec := newRecorder()
	c, _ := runClient(t, vppapi.Options{Socket: path, Messages: vppapi.CoreMessages(), Observer: rec})
	waitResync(t, c)

	info, err := c.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "25.10-release" || info.PID != 100 {
		t.Errorf("Info = %+v, want version 25.10-release and pid 100", info)
	}
	out, err := c.CLI(context.Background(), "show version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "25.10-release") {
		t.Errorf("show version answered %q", out)
	}
	if _, err := c.CLI(context.Background(), "frobnicate"); err == nil || !strings.Contains(err.Error(), "unknown input") {
		t.Errorf("unknown CLI command returned %v, want VPP's reason in the error", err)
	}
	rec.mu.Lock()
	cliWrites := rec.writes["cli_inband"]
	rec.mu.Unlock()
	if cliWrites != 2 || s.Calls("cli_inband") != 2 {
		t.Errorf("cli_inband counted %d times by the client and %d by VPP, want 2 and 2", cliWrites, s.Calls("cli_inband"))
	}
}

// The binary must refuse a VPP that advertises another CRC for a message it
// uses, and name that message with both CRCs.
func TestRefusesMismatchedCRC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	startSim(t, path, sim.Options{CorruptCRC: []string{"cli_inband"}})
	_, done := runClient(t, vppapi.Options{Socket: path, Messages: vppapi.CoreMessages()})

	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("client kept running against an incompatible VPP")
	}
	var inc *vppapi.IncompatibleError
	if !errors.As(err, &inc) {
		t.Fatalf("Run returned %v, want *IncompatibleError", err)
	}
	if len(inc.Mismatches) != 1 || inc.Mismatches[0].Name != "cli_inband" {
		t.Fatalf("mismatches = %+v, want exactly cli_inband", inc.Mismatches)
	}
	m := inc.Mismatches[0]
	if m.WantCRC != (&vlib.CliInband{}).GetCrcString() || m.HaveCRC == "" || m.HaveCRC == m.WantCRC {
		t.Errorf("mismatch %+v: want the binary's CRC f8377302 and VPP's different one", m)
	}
	for _, want := range []string{"cli_inband", "25.10-release", m.HaveCRC} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestWaitsForVPPThenConnects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	c, _ := runClient(t, vppapi.Options{Socket: path, Messages: vppapi.CoreMessages()})
	if err := c.Invoke(context.Background(), &memclnt.ControlPing{}, &memclnt.ControlPingReply{}); !errors.Is(err, vppapi.ErrNotConnected) {
		t.Fatalf("call before VPP exists: %v, want ErrNotConnected", err)
	}
	time.Sleep(100 * time.Millisecond) // a few failed tries
	startSim(t, path, sim.Options{})
	waitResync(t, c)
	if err := c.Invoke(context.Background(), &vpe.ShowVersion{}, &vpe.ShowVersionReply{}); err != nil {
		t.Fatalf("call after connect: %v", err)
	}
}

// Killing VPP and starting a new one must be noticed, reconnected and
// reported as a restart, with a resync signal for the drivers.
func TestDetectsRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	first := startSim(t, path, sim.Options{PID: 1})
	rec := newRecorder()
	c, _ := runClient(t, vppapi.Options{Socket: path, Messages: vppapi.CoreMessages(), Observer: rec})
	waitResync(t, c)

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	startSim(t, path, sim.Options{PID: 2})
	waitResync(t, c)

	info, err := c.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.PID != 2 {
		t.Errorf("connected to pid %d, want the new VPP (2)", info.PID)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reconnects) != 1 || !rec.reconnects[0] {
		t.Errorf("reconnects = %v, want one reported restart", rec.reconnects)
	}
	if rec.downs < 1 {
		t.Error("the lost connection was never reported down")
	}
}
