package tag

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	long := strings.Repeat("n", 80)
	tests := []struct {
		kind, key string
		want      string // exact, when short enough
	}{
		{"loopback", "node", "kube-vpp:loopback:node"},
		{"table", "pods-v4", "kube-vpp:table:pods-v4"},
		{"pod", "default/" + long, ""},
	}
	for _, tt := range tests {
		got := New(tt.kind, tt.key)
		if len(got) > MaxLen {
			t.Errorf("New(%q, %q) is %d bytes, over VPP's %d", tt.kind, tt.key, len(got), MaxLen)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("New(%q, %q) = %q, want %q", tt.kind, tt.key, got, tt.want)
		}
		if !Owned(got) || Kind(got) != tt.kind {
			t.Errorf("New(%q, %q) = %q: Owned %v Kind %q", tt.kind, tt.key, got, Owned(got), Kind(got))
		}
	}
	a, b := New("pod", "default/"+long+"a"), New("pod", "default/"+long+"b")
	if a == b {
		t.Errorf("two long keys differing at the end share tag %q", a)
	}
	if New("pod", "default/"+long) != New("pod", "default/"+long) {
		t.Error("tags are not deterministic")
	}
}

func TestOwned(t *testing.T) {
	for tg, want := range map[string]bool{
		"kube-vpp:loopback:node": true,
		"":                       false,
		"calico:loop":            false,
		"kube-vppx:loop":         false,
		"my kube-vpp:thing":      false,
	} {
		if Owned(tg) != want {
			t.Errorf("Owned(%q) = %v, want %v", tg, !want, want)
		}
	}
	if Kind("foreign") != "" || Kind("kube-vpp:") != "" {
		t.Error("Kind of a foreign or malformed tag is not empty")
	}
}
