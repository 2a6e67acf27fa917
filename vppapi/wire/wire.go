// Package wire holds the framing of VPP's socket API: every message on
// /run/vpp/api.sock is preceded by a 16-byte header whose bytes 8..11 carry
// the payload length (big endian). The payload starts with the message ID.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the size of the frame header VPP's socket transport uses.
const HeaderLen = 16

// MaxFrame bounds what a reader accepts, so a corrupt or hostile peer cannot
// make us allocate gigabytes. VPP's own socket server caps messages well
// below this.
const MaxFrame = 16 << 20

// ErrFrameTooLarge is returned for a header announcing more than MaxFrame.
var ErrFrameTooLarge = errors.New("vpp socket frame too large")

// ReadFrame reads one framed message and returns its payload.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[8:12])
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("reading %d-byte frame: %w", n, err)
	}
	return buf, nil
}

// WriteFrame writes payload behind a frame header in one write call, so that
// concurrent writers holding their own lock never interleave partial frames.
func WriteFrame(w io.Writer, payload []byte) error {
	buf := make([]byte, HeaderLen+len(payload))
	binary.BigEndian.PutUint32(buf[8:12], uint32(len(payload)))
	copy(buf[HeaderLen:], payload)
	_, err := w.Write(buf)
	return err
}

// MsgID returns the message ID that starts every payload.
func MsgID(payload []byte) (uint16, error) {
	if len(payload) < 2 {
		return 0, fmt.Errorf("vpp message of %d bytes has no message ID", len(payload))
	}
	return binary.BigEndian.Uint16(payload[:2]), nil
}

// RequestContext returns the context of a request payload (ID, client index, context).
func RequestContext(payload []byte) (uint32, error) {
	if len(payload) < 10 {
		return 0, fmt.Errorf("vpp request of %d bytes is shorter than its 10-byte header", len(payload))
	}
	return binary.BigEndian.Uint32(payload[6:10]), nil
}

// SetReplyContext stores context into a reply payload (ID, context, ...).
func SetReplyContext(payload []byte, context uint32) {
	if len(payload) >= 6 {
		binary.BigEndian.PutUint32(payload[2:6], context)
	}
}

// SetRequestHeader stores the client index and context into a request payload.
func SetRequestHeader(payload []byte, clientIndex, context uint32) {
	if len(payload) >= 10 {
		binary.BigEndian.PutUint32(payload[2:6], clientIndex)
		binary.BigEndian.PutUint32(payload[6:10], context)
	}
}
