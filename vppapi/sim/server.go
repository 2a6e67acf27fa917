package sim

import (
	"bufio"
	"errors"
	"io"
	"net"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi/wire"
)

func (s *Sim) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept failed", zap.Error(err))
			}
			return
		}
		s.lnMu.Lock()
		if s.closed {
			s.lnMu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.lnMu.Unlock()
		go s.serveConn(c)
	}
}

// serveConn handles one API client. Requests are answered in order, so a
// dump's details always precede the control_ping_reply that closes it.
func (s *Sim) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.lnMu.Lock()
		delete(s.conns, c)
		s.lnMu.Unlock()
		_ = c.Close()
	}()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		payload, err := wire.ReadFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("client read failed", zap.Error(err))
			}
			return
		}
		replies, closeAfter := s.dispatch(payload)
		for _, rep := range replies {
			if err := wire.WriteFrame(w, rep); err != nil {
				return
			}
		}
		if err := w.Flush(); err != nil {
			return
		}
		if closeAfter {
			return
		}
	}
}

// dispatch decodes one request and returns the encoded replies. A message ID
// VPP doesn't know gets no answer at all, only a log line, as in VPP's
// msg_handler_internal ("no handler for msg id").
func (s *Sim) dispatch(payload []byte) (out [][]byte, closeConn bool) {
	id, err := wire.MsgID(payload)
	if err != nil {
		s.log.Warn("malformed message", zap.Error(err))
		return nil, false
	}
	h, ok := s.handlers[id]
	if !ok {
		s.log.Warn("no handler for msg id", zap.Uint16("msg_id", id))
		return nil, false
	}
	ctxID, err := wire.RequestContext(payload)
	if err != nil {
		s.log.Warn("malformed request", zap.Uint16("msg_id", id), zap.Error(err))
		return nil, false
	}
	req := h.newRequest()
	if err := codec.DecodeMsg(payload, req); err != nil {
		// VPP would read garbage fields; refusing to answer is the closest
		// safe behaviour and shows up as a timeout in the client.
		s.log.Warn("undecodable request", zap.String("msg", req.GetMessageName()), zap.Error(err))
		return nil, false
	}
	s.mu.Lock()
	s.calls[req.GetMessageName()]++
	replies := h.fn(req)
	s.mu.Unlock()

	for _, rep := range replies {
		b, err := s.encode(rep, ctxID)
		if err != nil {
			s.log.Error("encoding reply", zap.String("msg", rep.GetMessageName()), zap.Error(err))
			continue
		}
		out = append(out, b)
	}
	_, isDelete := req.(*memclnt.SockclntDelete)
	return out, isDelete
}

func (s *Sim) encode(msg api.Message, ctxID uint32) ([]byte, error) {
	id, ok := s.table.id(msg)
	if !ok {
		return nil, errors.New("reply message missing from the message table")
	}
	b, err := codec.EncodeMsg(msg, id)
	if err != nil {
		return nil, err
	}
	wire.SetReplyContext(b, ctxID)
	return b, nil
}
