package vppapi

import (
	"context"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/core"
)

var _ api.Connection = (*Client)(nil)

// Invoke sends one request and waits for its reply, bounded by the reply timeout.
func (c *Client) Invoke(ctx context.Context, req api.Message, reply api.Message) error {
	conn, err := c.current()
	if err != nil {
		return err
	}
	c.observe(req)
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReplyTimeout)
	defer cancel()
	return conn.Invoke(ctx, req, reply)
}

// NewStream opens a stream for dumps; each message sent on it is counted.
func (c *Client) NewStream(ctx context.Context, options ...api.StreamOption) (api.Stream, error) {
	conn, err := c.current()
	if err != nil {
		return nil, err
	}
	opts := append([]api.StreamOption{core.WithReplyTimeout(c.opts.ReplyTimeout)}, options...)
	s, err := conn.NewStream(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &countingStream{Stream: s, c: c}, nil
}

// WatchEvent subscribes to VPP events on the current connection.
func (c *Client) WatchEvent(ctx context.Context, event api.Message) (api.Watcher, error) {
	conn, err := c.current()
	if err != nil {
		return nil, err
	}
	return conn.WatchEvent(ctx, event)
}

type countingStream struct {
	api.Stream
	c *Client
}

func (s *countingStream) SendMsg(msg api.Message) error {
	// The control_ping closing a dump is part of the dump, not a call of its own.
	if _, ping := msg.(*memclnt.ControlPing); !ping {
		s.c.observe(msg)
	}
	return s.Stream.SendMsg(msg)
}
