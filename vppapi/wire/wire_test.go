package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", []byte{}},
		{"control_ping", []byte{0, 23, 0, 0, 0, 1, 0, 0, 0, 7}},
		{"large", bytes.Repeat([]byte{0xab}, 70000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteFrame(&b, tt.payload); err != nil {
				t.Fatal(err)
			}
			if got := b.Len(); got != HeaderLen+len(tt.payload) {
				t.Fatalf("frame is %d bytes, want %d", got, HeaderLen+len(tt.payload))
			}
			got, err := ReadFrame(&b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.payload) {
				t.Fatalf("payload changed in transit")
			}
		})
	}
}

func TestReadFrameErrors(t *testing.T) {
	huge := make([]byte, HeaderLen)
	binary.BigEndian.PutUint32(huge[8:12], MaxFrame+1)
	short := make([]byte, HeaderLen)
	binary.BigEndian.PutUint32(short[8:12], 10)
	short = append(short, 1, 2, 3)

	if _, err := ReadFrame(bytes.NewReader(huge)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: got %v, want ErrFrameTooLarge", err)
	}
	if _, err := ReadFrame(bytes.NewReader(short)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: got %v, want unexpected EOF", err)
	}
	if _, err := ReadFrame(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("closed stream: got %v, want EOF", err)
	}
}

func TestHeaders(t *testing.T) {
	req := make([]byte, 12)
	SetRequestHeader(req, 5, 0xdeadbeef)
	ctx, err := RequestContext(req)
	if err != nil || ctx != 0xdeadbeef {
		t.Fatalf("RequestContext = %#x, %v", ctx, err)
	}
	if _, err := RequestContext(req[:9]); err == nil {
		t.Fatal("short request accepted")
	}
	rep := []byte{0, 16, 0, 0, 0, 0, 9}
	SetReplyContext(rep, 42)
	if binary.BigEndian.Uint32(rep[2:6]) != 42 {
		t.Fatal("reply context not set")
	}
	if id, _ := MsgID(rep); id != 16 {
		t.Fatalf("MsgID = %d, want 16", id)
	}
	if _, err := MsgID([]byte{1}); err == nil {
		t.Fatal("one-byte message accepted")
	}
}

func TestReadOnly(t *testing.T) {
	tests := map[string]bool{
		"sw_interface_dump":            true,
		"ip_route_v2_dump":             true,
		"control_ping":                 true,
		"show_version":                 true,
		"sw_interface_get_table":       true,
		"get_first_msg_id":             true,
		"nat44_show_running_config":    true,
		"nat44_ed_show_fq_options":     true,
		"nat44_ed_set_fq_options":      false,
		"sw_interface_add_del_address": false,
		"ip_route_add_del":             false,
		"create_loopback":              false,
		"cli_inband":                   false,
		"acl_plugin_control_ping":      true,
		"acl_plugin_get_version":       true,
		"acl_add_replace":              false,
		"acl_interface_set_acl_list":   false,
	}
	for name, want := range tests {
		if got := ReadOnly(name); got != want {
			t.Errorf("ReadOnly(%q) = %v, want %v", name, got, want)
		}
	}
}
