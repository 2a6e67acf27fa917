package sim

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/binapi/vpe"
	"go.fd.io/govpp/core"

	"github.com/kube-vpp/kube-vpp/vppapi/wire"
)

// startSim runs a simulator on a fresh socket and connects govpp's socket
// client to it, exactly as the agent does.
func startSim(t *testing.T, opts Options) (*Sim, *core.Connection, string) {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "api.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	conn, err := core.Connect(socketclient.NewVppClient(path))
	if err != nil {
		t.Fatalf("govpp connect: %v", err)
	}
	t.Cleanup(conn.Disconnect)
	return s, conn, path
}

func TestHandshakeAndCoreMessages(t *testing.T) {
	s, conn, _ := startSim(t, Options{PID: 4242})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	ping := &memclnt.ControlPingReply{}
	if err := conn.Invoke(ctx, &memclnt.ControlPing{}, ping); err != nil {
		t.Fatalf("control_ping: %v", err)
	}
	if ping.VpePID != 4242 {
		t.Errorf("vpe_pid = %d, want 4242", ping.VpePID)
	}
	ver := &vpe.ShowVersionReply{}
	if err := conn.Invoke(ctx, &vpe.ShowVersion{}, ver); err != nil {
		t.Fatalf("show_version: %v", err)
	}
	if ver.Version != "25.10-release" || ver.Program != "vpe" {
		t.Errorf("show_version = %q %q, want vpe 25.10-release", ver.Program, ver.Version)
	}
	if got := s.Calls("control_ping"); got < 1 {
		t.Errorf("control_ping counted %d times", got)
	}
}

func TestMessageTableFixedIDs(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint16{"sockclnt_create": 15, "sockclnt_create_reply": 16, "control_ping": 23, "control_ping_reply": 24} {
		if got, ok := s.table.byName[name]; !ok || got != want {
			t.Errorf("%s has ID %d (present %v), want %d as in VPP", name, got, ok, want)
		}
	}
}

func TestCorruptCRCIsAdvertised(t *testing.T) {
	_, conn, _ := startSim(t, Options{CorruptCRC: []string{"show_version"}})
	if _, err := conn.GetMessageID(&vpe.ShowVersion{}); err == nil {
		t.Fatal("show_version with its real CRC was found although the table advertises another")
	}
	if _, err := conn.GetMessageID(&memclnt.ControlPing{}); err != nil {
		t.Fatalf("control_ping should still match: %v", err)
	}
	if _, err := New(Options{CorruptCRC: []string{"no_such_message"}}); err == nil {
		t.Fatal("corrupting an unserved message was accepted")
	}
}

// An unknown message ID gets no reply (VPP logs "no handler for msg id");
// the connection stays usable.
func TestUnknownMessageIDGetsNoReply(t *testing.T) {
	_, _, path := startSim(t, Options{})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)

	unknown := make([]byte, 10)
	binary.BigEndian.PutUint16(unknown, 9999)
	if err := wire.WriteFrame(c, unknown); err != nil {
		t.Fatal(err)
	}
	ping := make([]byte, 10)
	binary.BigEndian.PutUint16(ping, 23) // control_ping
	wire.SetRequestHeader(ping, 0, 77)
	if err := wire.WriteFrame(c, ping); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	rep, err := wire.ReadFrame(r)
	if err != nil {
		t.Fatalf("no reply to the ping after an unknown message: %v", err)
	}
	if id, _ := wire.MsgID(rep); id != 24 {
		t.Fatalf("first reply has ID %d, want control_ping_reply (24): the unknown message was answered", id)
	}
	if ctx := binary.BigEndian.Uint32(rep[2:6]); ctx != 77 {
		t.Fatalf("reply context %d, want 77", ctx)
	}
}

func TestCloseDropsClients(t *testing.T) {
	s, conn, _ := startSim(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := conn.Invoke(ctx, &memclnt.ControlPing{}, &memclnt.ControlPingReply{})
	if err == nil {
		t.Fatal("ping succeeded on a closed simulator")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("ping after close failed with %v", err)
	}
}
