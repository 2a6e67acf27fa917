// Package vppapi owns the connection to VPP's binary API: it connects with
// backoff, refuses a VPP whose message table does not match the binapi this
// binary was built with, detects VPP restarts and tells the drivers to
// re-program. It is the only package that imports govpp's transport; drivers
// see it as a plain api.Connection.
package vppapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/binapi/vlib"
	"go.fd.io/govpp/binapi/vpe"
	"go.fd.io/govpp/core"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi/wire"
)

// ErrNotConnected is returned for calls made while VPP is unreachable.
var ErrNotConnected = errors.New("not connected to VPP")

// Options configure a Client. Zero durations take the defaults below.
type Options struct {
	Socket         string        // default /run/vpp/api.sock
	BackoffInitial time.Duration // first retry delay, doubled up to BackoffMax (default 250ms)
	BackoffMax     time.Duration // default 5s
	HealthInterval time.Duration // control_ping period (default 1s)
	ReplyTimeout   time.Duration // per request (default 5s)
	// Messages are every request and reply the agent sends or expects; all
	// must be in VPP's table with the same CRC.
	Messages []api.Message
	Logger   *zap.Logger
	// Observer, when set, is told about connection changes and each API call.
	Observer Observer
}

// Observer receives what metrics need; its methods must not block.
type Observer interface {
	Connected(up bool)
	Reconnected(vppRestarted bool)
	APICall(msgName string, write bool)
}

// Info describes the VPP the client is connected to.
type Info struct {
	Version   string // show_version's version, e.g. 25.10-release
	BuildDate string
	PID       uint32 // vpe_pid: changes when VPP restarts
	// Connection counts this client's connections, from 1: state read from
	// VPP under an older number may be stale.
	Connection uint64
}

// Client is a supervised connection to VPP. It implements api.Connection, so
// govpp's generated RPC clients run on it; every call is counted.
type Client struct {
	opts Options
	log  *zap.Logger

	mu   sync.RWMutex
	conn *core.Connection
	info Info

	resync chan struct{}
}

// New returns a client; Run connects it.
func New(opts Options) *Client {
	if opts.Socket == "" {
		opts.Socket = socketclient.DefaultSocketName
	}
	setDefault(&opts.BackoffInitial, 250*time.Millisecond)
	setDefault(&opts.BackoffMax, 5*time.Second)
	setDefault(&opts.HealthInterval, time.Second)
	setDefault(&opts.ReplyTimeout, 5*time.Second)
	if opts.BackoffInitial > opts.BackoffMax {
		opts.BackoffInitial = opts.BackoffMax
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Client{opts: opts, log: log.With(zap.String("vpp_socket", opts.Socket)), resync: make(chan struct{}, 1)}
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Resync delivers a signal after every (re)connection: whatever VPP holds may
// differ from what the drivers last programmed, so they must sync again.
// Signals coalesce; the channel never closes.
func (c *Client) Resync() <-chan struct{} { return c.resync }

// Connected reports whether a verified connection is up.
func (c *Client) Connected() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.conn != nil
}

// Info returns what VPP reported at the last connection.
func (c *Client) Info() (Info, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.conn == nil {
		return Info{}, ErrNotConnected
	}
	return c.info, nil
}

// Run connects and keeps the connection up until ctx ends. It returns an
// *IncompatibleError as soon as VPP's message table does not match, and
// ctx's error otherwise. VPP's forwarding state is never touched here: losing
// the socket only pauses programming.
func (c *Client) Run(ctx context.Context) error {
	var (
		lastPID     uint32
		connections uint64
	)
	first := true
	for {
		conn, info, err := c.connectWithBackoff(ctx)
		if err != nil {
			return err
		}
		connections++
		info.Connection = connections
		restarted := !first && info.PID != lastPID
		c.setConn(conn, info)
		if first {
			c.log.Info("connected to VPP", zap.String("version", info.Version), zap.Uint32("vpe_pid", info.PID))
		} else {
			c.log.Info("reconnected to VPP", zap.String("version", info.Version), zap.Uint32("vpe_pid", info.PID),
				zap.Bool("vpp_restarted", restarted))
			if c.opts.Observer != nil {
				c.opts.Observer.Reconnected(restarted)
			}
		}
		first, lastPID = false, info.PID
		c.signalResync()

		why := c.supervise(ctx, conn, info.PID)
		c.setConn(nil, Info{})
		conn.Disconnect()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("lost VPP; programming paused until it answers again", zap.String("reason", why))
	}
}

func (c *Client) setConn(conn *core.Connection, info Info) {
	c.mu.Lock()
	c.conn, c.info = conn, info
	c.mu.Unlock()
	if c.opts.Observer != nil {
		c.opts.Observer.Connected(conn != nil)
	}
}

func (c *Client) signalResync() {
	select {
	case c.resync <- struct{}{}:
	default:
	}
}

// supervise pings VPP until the connection fails or VPP turns out to be a
// new process; it returns why it stopped.
func (c *Client) supervise(ctx context.Context, conn *core.Connection, pid uint32) string {
	t := time.NewTicker(c.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "shutting down"
		case <-t.C:
		}
		reply := &memclnt.ControlPingReply{}
		pctx, cancel := context.WithTimeout(ctx, c.opts.ReplyTimeout)
		err := conn.Invoke(pctx, &memclnt.ControlPing{}, reply)
		cancel()
		switch {
		case ctx.Err() != nil:
			return "shutting down"
		case err != nil:
			return fmt.Sprintf("health ping failed: %v", err)
		case reply.VpePID != pid:
			return fmt.Sprintf("VPP restarted (vpe_pid %d -> %d)", pid, reply.VpePID)
		}
	}
}

// connectWithBackoff retries until VPP answers a verified handshake. Failed
// tries are logged once when they start and then at most every 30 seconds.
func (c *Client) connectWithBackoff(ctx context.Context) (*core.Connection, Info, error) {
	delay := c.opts.BackoffInitial
	var (
		attempts   int
		lastLogged time.Time
		lastErr    string
	)
	for {
		conn, info, err := c.connectOnce(ctx)
		if err == nil {
			if attempts > 0 {
				c.log.Info("VPP answered", zap.Int("failed_attempts", attempts))
			}
			return conn, info, nil
		}
		var incompatible *IncompatibleError
		if errors.As(err, &incompatible) {
			return nil, Info{}, err
		}
		attempts++
		if now := time.Now(); attempts == 1 || now.Sub(lastLogged) >= 30*time.Second || err.Error() != lastErr {
			c.log.Warn("VPP not reachable, retrying", zap.Error(err), zap.Int("attempts", attempts), zap.Duration("next_try_in", delay))
			lastLogged, lastErr = now, err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, Info{}, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, c.opts.BackoffMax)
	}
}

func (c *Client) connectOnce(ctx context.Context) (*core.Connection, Info, error) {
	adapter := socketclient.NewVppClient(c.opts.Socket)
	adapter.SetClientName("kube-vpp-agent")
	adapter.SetConnectTimeout(c.opts.ReplyTimeout)
	conn, err := core.Connect(adapter)
	if err != nil {
		return nil, Info{}, err
	}
	if mismatches := checkMessages(conn, c.opts.Messages, nil); len(mismatches) > 0 {
		tctx, cancel := context.WithTimeout(ctx, c.opts.ReplyTimeout)
		table, terr := readMessageTable(tctx, c.opts.Socket)
		cancel()
		if terr == nil {
			mismatches = checkMessages(conn, c.opts.Messages, table)
		}
		ierr := &IncompatibleError{Mismatches: mismatches}
		if info, verr := c.queryInfo(ctx, conn); verr == nil {
			ierr.VPPVersion = info.Version
		}
		conn.Disconnect()
		return nil, Info{}, ierr
	}
	info, err := c.queryInfo(ctx, conn)
	if err != nil {
		conn.Disconnect()
		return nil, Info{}, err
	}
	return conn, info, nil
}

func (c *Client) queryInfo(ctx context.Context, conn *core.Connection) (Info, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReplyTimeout)
	defer cancel()
	ver := &vpe.ShowVersionReply{}
	if err := conn.Invoke(ctx, &vpe.ShowVersion{}, ver); err != nil {
		return Info{}, fmt.Errorf("show_version: %w", err)
	}
	if err := api.RetvalToVPPApiError(ver.Retval); err != nil {
		return Info{}, fmt.Errorf("show_version: %w", err)
	}
	ping := &memclnt.ControlPingReply{}
	if err := conn.Invoke(ctx, &memclnt.ControlPing{}, ping); err != nil {
		return Info{}, fmt.Errorf("control_ping: %w", err)
	}
	return Info{Version: ver.Version, BuildDate: ver.BuildDate, PID: ping.VpePID}, nil
}

// CLI runs a debug CLI command through cli_inband and returns VPP's answer.
func (c *Client) CLI(ctx context.Context, cmd string) (string, error) {
	reply := &vlib.CliInbandReply{}
	if err := c.Invoke(ctx, &vlib.CliInband{Cmd: cmd}, reply); err != nil {
		return "", fmt.Errorf("cli_inband %q: %w", cmd, err)
	}
	if err := api.RetvalToVPPApiError(reply.Retval); err != nil {
		// VPP puts the reason ("unknown input ...") in the reply text.
		return reply.Reply, fmt.Errorf("VPP CLI %q: %s (%w)", cmd, strings.TrimSpace(reply.Reply), err)
	}
	return reply.Reply, nil
}

// CoreMessages are the messages the client itself sends; the agent adds the
// drivers' lists to them for the compatibility check.
func CoreMessages() []api.Message {
	return []api.Message{
		&memclnt.ControlPing{}, &memclnt.ControlPingReply{},
		&vpe.ShowVersion{}, &vpe.ShowVersionReply{},
		&vlib.CliInband{}, &vlib.CliInbandReply{},
	}
}

func (c *Client) current() (*core.Connection, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.conn == nil {
		return nil, ErrNotConnected
	}
	return c.conn, nil
}

func (c *Client) observe(msg api.Message) {
	if c.opts.Observer != nil {
		name := msg.GetMessageName()
		c.opts.Observer.APICall(name, !wire.ReadOnly(name))
	}
}
