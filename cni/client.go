package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// maxReplyBytes limits what the client reads back; a result is a few KiB.
const maxReplyBytes = 1 << 20

// UnreachableError reports that no connection to the agent could be made, so the
// call certainly did not reach it and may be retried.
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("agent not reachable at %s: %v", e.Path, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client makes CNI calls to the agent's socket. Each call uses its own connection.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client for the agent socket at path.
func NewClient(path string) *Client {
	var d net.Dialer
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, &UnreachableError{Path: path, Err: err}
			}
			return conn, nil
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	return &Client{path: path, http: &http.Client{Transport: transport}}
}

// Do sends one call and returns the agent's reply, which holds either a result or
// a CNI error. An error from Do means no reply was had: *UnreachableError when the
// socket could not be dialled, otherwise a transport or decoding failure. The
// agent's deadline for the call is the one in ctx.
func (c *Client) Do(ctx context.Context, req *Request) (*Reply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding %s request for the agent at %s: %w", req.Command, c.path, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://kube-vpp-agent"+callPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s request for the agent at %s: %w", req.Command, c.path, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%s request for the agent at %s: %w", req.Command, c.path, context.DeadlineExceeded)
		}
		hreq.Header.Set(timeoutHeader, left.String())
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		var unreachable *UnreachableError
		if errors.As(err, &unreachable) {
			return nil, unreachable
		}
		return nil, fmt.Errorf("%s call to the agent at %s: %w", req.Command, c.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s call to the agent at %s: reading the reply: %w", req.Command, c.path, err)
	}
	if len(data) > maxReplyBytes {
		return nil, fmt.Errorf("%s call to the agent at %s: reply exceeds %d bytes", req.Command, c.path, maxReplyBytes)
	}
	var reply Reply
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, fmt.Errorf("%s call to the agent at %s: HTTP %d with an undecodable reply: %w", req.Command, c.path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK && reply.Error == nil {
		return nil, fmt.Errorf("%s call to the agent at %s: HTTP %d without a CNI error", req.Command, c.path, resp.StatusCode)
	}
	return &reply, nil
}
