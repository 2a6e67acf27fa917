package offline

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func node(name, ip string) string {
	s := "apiVersion: v1\nkind: Node\nmetadata: {name: " + name + "}\nspec: {podCIDRs: [10.244.0.0/24]}\n"
	if ip != "" {
		s += "status: {addresses: [{type: InternalIP, address: " + ip + "}]}\n"
	}
	return s + "---\n"
}

func TestPickNode(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		ask      string
		want     Node
		err      string
	}{
		{"the only node", node("solo", "192.168.1.5"), "", Node{"solo", netip.MustParseAddr("192.168.1.5")}, ""},
		{"first by name", node("zeta", "10.0.0.2") + node("alpha", "10.0.0.1"), "", Node{"alpha", netip.MustParseAddr("10.0.0.1")}, ""},
		{"named", node("zeta", "10.0.0.2") + node("alpha", "10.0.0.1"), "zeta", Node{"zeta", netip.MustParseAddr("10.0.0.2")}, ""},
		{"no InternalIP", node("bare", ""), "", Node{Name: "bare"}, ""},
		{"unknown name", node("zeta", "10.0.0.2"), "nope", Node{}, `no Node "nope" (there are: zeta)`},
		{"no nodes", "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "", Node{}, "no Node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(tt.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := PickNode(dir, tt.ask)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("PickNode error = %v, want it to mention %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("PickNode = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
