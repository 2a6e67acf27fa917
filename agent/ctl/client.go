package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/kube-vpp/kube-vpp/bgp"
	"github.com/kube-vpp/kube-vpp/cni/pods"
	"github.com/kube-vpp/kube-vpp/services"
)

// Client talks to a running agent's control socket.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{path: path, http: &http.Client{Transport: tr}}
}

// Version asks the agent for its and VPP's versions.
func (c *Client) Version(ctx context.Context) (VersionInfo, error) {
	var v VersionInfo
	err := c.do(ctx, http.MethodGet, "/v1/version", nil, &v)
	return v, err
}

// Status asks the agent whether it is connected and in sync.
func (c *Client) Status(ctx context.Context) (StatusInfo, error) {
	var st StatusInfo
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// BGP asks the agent for its BGP peers and routes.
func (c *Client) BGP(ctx context.Context) (bgp.Status, error) {
	var st bgp.Status
	err := c.do(ctx, http.MethodGet, "/v1/bgp", nil, &st)
	return st, err
}

// Pods asks the agent for the pods it plumbed.
func (c *Client) Pods(ctx context.Context) ([]pods.PodStatus, error) {
	var list []pods.PodStatus
	err := c.do(ctx, http.MethodGet, "/v1/pods", nil, &list)
	return list, err
}

// Services asks the agent for the services it programs.
func (c *Client) Services(ctx context.Context) ([]services.Status, error) {
	var list []services.Status
	err := c.do(ctx, http.MethodGet, "/v1/services", nil, &list)
	return list, err
}

// Trace asks the agent to evaluate packets through VPP's graph.
func (c *Client) Trace(ctx context.Context, req TraceRequest) (TraceReply, error) {
	var rep TraceReply
	err := c.do(ctx, http.MethodPost, "/v1/trace", req, &rep)
	return rep, err
}

// Policies asks the agent for its pods' policy tables.
func (c *Client) Policies(ctx context.Context) ([]PodPolicy, error) {
	var list []PodPolicy
	err := c.do(ctx, http.MethodGet, "/v1/policies", nil, &list)
	return list, err
}

// Events asks the agent for the latest Events it recorded.
func (c *Client) Events(ctx context.Context) ([]EventInfo, error) {
	var list []EventInfo
	err := c.do(ctx, http.MethodGet, "/v1/events", nil, &list)
	return list, err
}

// CLI passes a command to VPP's debug CLI through the agent.
func (c *Client) CLI(ctx context.Context, cmd string) (string, error) {
	var rep cliReply
	err := c.do(ctx, http.MethodPost, "/v1/cli", cliRequest{Command: cmd}, &rep)
	return rep.Output, err
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("agent not reachable at %s (is kube-vpp-agent running?): %w", c.path, err)
		}
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("agent socket %s: permission denied (run as root)", c.path)
		}
		return fmt.Errorf("agent at %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading agent reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorReply
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("agent answered %s", resp.Status)
	}
	return json.Unmarshal(data, out)
}
