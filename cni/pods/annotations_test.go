package pods

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	ip := netip.MustParseAddr
	tests := []struct {
		name   string
		ann    map[string]string
		want   Options
		errKey string // the annotation an error must name
		errHas string
	}{
		{name: "no annotations: node default, vhost server", ann: nil, want: Options{VhostServer: true}},
		{name: "tap", ann: map[string]string{AnnotationInterface: "tap"}, want: Options{Kind: KindTap, VhostServer: true}},
		{name: "case and spaces", ann: map[string]string{AnnotationInterface: " Veth "}, want: Options{Kind: KindVeth, VhostServer: true}},
		{name: "memif only", ann: map[string]string{AnnotationInterface: "memif", AnnotationMemifOnly: "true"}, want: Options{Kind: KindMemif, MemifOnly: true, VhostServer: true}},
		{name: "vhost-user client", ann: map[string]string{AnnotationInterface: "vhost-user", AnnotationVhostUserMode: "client"}, want: Options{Kind: KindVhostUser}},
		{name: "fixed dual-stack", ann: map[string]string{AnnotationIP: "10.244.0.50, fd00::50"}, want: Options{VhostServer: true, Fixed: []netip.Addr{ip("10.244.0.50"), ip("fd00::50")}}},
		{name: "unknown kind", ann: map[string]string{AnnotationInterface: "macvlan"}, errKey: AnnotationInterface, errHas: "unknown interface kind"},
		{name: "memif-only not a bool", ann: map[string]string{AnnotationInterface: "memif", AnnotationMemifOnly: "yes please"}, errKey: AnnotationMemifOnly, errHas: "true or false"},
		{name: "memif-only without memif", ann: map[string]string{AnnotationMemifOnly: "true"}, errKey: AnnotationMemifOnly, errHas: "only applies"},
		{name: "bad vhost mode", ann: map[string]string{AnnotationInterface: "vhost-user", AnnotationVhostUserMode: "both"}, errKey: AnnotationVhostUserMode, errHas: "server or client"},
		{name: "vhost mode without vhost", ann: map[string]string{AnnotationVhostUserMode: "client"}, errKey: AnnotationVhostUserMode, errHas: "only applies"},
		{name: "fixed IP garbage", ann: map[string]string{AnnotationIP: "10.244.0.300"}, errKey: AnnotationIP, errHas: "not an IP address"},
		{name: "two IPv4", ann: map[string]string{AnnotationIP: "10.244.0.5,10.244.0.6"}, errKey: AnnotationIP, errHas: "more than one IPv4"},
		{name: "zoned IPv6", ann: map[string]string{AnnotationIP: "fe80::1%eth0"}, errKey: AnnotationIP, errHas: "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOptions("default/web", tt.ann)
			if tt.errKey != "" {
				var ae *AnnotationError
				if !errors.As(err, &ae) || ae.Key != tt.errKey || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "pod default/web") {
					t.Fatalf("error = %v, want an AnnotationError on %s containing %q and the pod", err, tt.errKey, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOptions: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePool(t *testing.T) {
	tests := []struct {
		name   string
		ann    map[string]string
		want   []netip.Prefix
		ok     bool
		errHas string
	}{
		{name: "none", ann: map[string]string{"other": "x"}},
		{name: "dual-stack", ann: map[string]string{AnnotationIPPool: "10.244.0.128/26, fd00:10:244::/112"}, ok: true,
			want: []netip.Prefix{netip.MustParsePrefix("10.244.0.128/26"), netip.MustParsePrefix("fd00:10:244::/112")}},
		{name: "garbage", ann: map[string]string{AnnotationIPPool: "team-a"}, ok: true, errHas: `"team-a" is not a CIDR`},
		{name: "host bits", ann: map[string]string{AnnotationIPPool: "10.244.0.130/26"}, ok: true, errHas: "did you mean 10.244.0.128/26"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParsePool("team-a", tt.ann)
			if ok != tt.ok {
				t.Errorf("ok = %v, want %v", ok, tt.ok)
			}
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "namespace team-a") {
					t.Fatalf("error = %v, want one naming the namespace and containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
