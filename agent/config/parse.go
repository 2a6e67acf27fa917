package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"
)

// parse converts and validates every setting held by v. It reports all
// invalid values at once so that an operator can fix them in one go.
func parse(v *viper.Viper) (*Config, error) {
	p := parser{v: v}
	cfg := &Config{
		Node: Node{Name: p.nodeName(KeyNodeName)},
		VPP: VPP{
			Socket:                p.path(KeyVPPSocket),
			ConnectBackoffInitial: p.positiveDuration(KeyVPPBackoffInitial),
			ConnectBackoffMax:     p.positiveDuration(KeyVPPBackoffMax),
			HealthInterval:        p.positiveDuration(KeyVPPHealthInterval),
			ReplyTimeout:          p.positiveDuration(KeyVPPReplyTimeout),
		},
		Kubernetes: Kubernetes{
			Kubeconfig:   p.str(KeyKubeconfig),
			Manifests:    p.str(KeyManifests),
			ResyncPeriod: p.nonNegativeDuration(KeyResyncPeriod),
		},
		Log: Log{
			Level:  p.logLevel(KeyLogLevel),
			Format: p.logFormat(KeyLogFormat),
		},
		HTTP:   HTTP{Listen: p.listenAddr(KeyHTTPListen)},
		Ctl:    Ctl{Socket: p.path(KeyCtlSocket)},
		Uplink: Uplink{Interface: p.str(KeyUplinkInterface)},
		Network: Network{
			ServiceCIDRs:    p.prefixes(KeyNetworkServiceCIDRs),
			ExternalIPCIDRs: p.optionalPrefixes(KeyNetworkExternalIPCIDRs),
		},
		Pods:     p.pods(),
		Services: p.services(),
		BGP:      p.bgp(),
	}

	vpp := cfg.VPP
	if vpp.ConnectBackoffInitial > 0 && vpp.ConnectBackoffMax > 0 && vpp.ConnectBackoffInitial > vpp.ConnectBackoffMax {
		p.invalid(KeyVPPBackoffInitial, vpp.ConnectBackoffInitial.String(),
			fmt.Sprintf("must not exceed %s (%s)", KeyVPPBackoffMax, vpp.ConnectBackoffMax))
	}
	if k := cfg.Kubernetes; k.Kubeconfig != "" && k.Manifests != "" {
		p.invalid(KeyManifests, k.Manifests,
			fmt.Sprintf("cannot be combined with %s (%q): set one of them, or neither for in-cluster config", KeyKubeconfig, k.Kubeconfig))
	}

	switch len(p.errs) {
	case 0:
		return cfg, nil
	case 1:
		return nil, p.errs[0]
	default:
		return nil, errors.Join(p.errs...)
	}
}

// parser reads typed values from v, collecting an *InvalidError per bad value.
type parser struct {
	v    *viper.Viper
	errs []error
}

func (p *parser) invalid(key, value, reason string) {
	p.errs = append(p.errs, &InvalidError{Key: key, Value: value, Reason: reason})
}

// str returns the value of key as a string. Lists and mappings are refused:
// only the list options hold more than one value.
func (p *parser) str(key string) string {
	raw := p.v.Get(key)
	if raw == nil {
		return ""
	}
	switch reflect.ValueOf(raw).Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		p.invalid(key, fmt.Sprint(raw), "expected a single value, not a list or mapping")
		return ""
	}
	return strings.TrimSpace(fmt.Sprint(raw))
}

// list returns the elements of key: a YAML list, or a comma-separated string
// as the environment and flags give it.
func (p *parser) list(key string) []string {
	switch raw := p.v.Get(key).(type) {
	case nil:
		return nil
	case string:
		return splitList(raw)
	case []string:
		return trimAll(raw)
	case []any:
		out := make([]string, 0, len(raw))
		for _, e := range raw {
			out = append(out, fmt.Sprint(e))
		}
		return trimAll(out)
	default:
		p.invalid(key, fmt.Sprint(raw), "expected a list or a comma-separated string")
		return nil
	}
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return trimAll(strings.Split(s, ","))
}

func trimAll(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// nodeName requires a Kubernetes node name: a DNS-1123 subdomain, since the
// agent selects its own Node and Pods by it.
func (p *parser) nodeName(key string) string {
	s := p.str(key)
	switch {
	case s == "":
		p.invalid(key, s, fmt.Sprintf("required: set --node or %s", envName(key)))
	case !isDNSSubdomain(s):
		p.invalid(key, s, "not a Kubernetes node name (lowercase letters, digits, '-' and '.', "+
			"starting and ending with a letter or digit, at most 253 characters)")
	}
	return s
}

// isDNSSubdomain reports whether s is an RFC 1123 subdomain as Kubernetes
// validates object names (k8s.io/apimachinery IsDNS1123Subdomain).
func isDNSSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// path requires a non-empty filesystem path.
func (p *parser) path(key string) string {
	s := p.str(key)
	if s == "" {
		p.invalid(key, s, "must not be empty")
	}
	return s
}

func (p *parser) positiveDuration(key string) time.Duration {
	return p.duration(key, true)
}

func (p *parser) nonNegativeDuration(key string) time.Duration {
	return p.duration(key, false)
}

// duration parses key as a Go duration (250ms, 5s, 10m).
func (p *parser) duration(key string, positive bool) time.Duration {
	s := p.str(key)
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.invalid(key, s, "not a duration (write it with a unit, e.g. 250ms, 5s, 10m)")
	case positive && d <= 0:
		p.invalid(key, s, "must be greater than 0")
	case d < 0:
		p.invalid(key, s, "must not be negative")
	}
	return d
}

func (p *parser) logLevel(key string) zapcore.Level {
	s := p.str(key)
	switch strings.ToLower(s) {
	case "debug":
		return zapcore.DebugLevel
	case "info":
		return zapcore.InfoLevel
	case "warn":
		return zapcore.WarnLevel
	case "error":
		return zapcore.ErrorLevel
	}
	p.invalid(key, s, "must be one of debug, info, warn, error")
	return zapcore.InfoLevel
}

func (p *parser) logFormat(key string) LogFormat {
	s := p.str(key)
	switch f := LogFormat(strings.ToLower(s)); f {
	case LogConsole, LogJSON:
		return f
	}
	p.invalid(key, s, "must be console or json")
	return LogConsole
}

// listenAddr requires host:port with a numeric port and a host that is empty
// (all addresses), an IP address or "localhost".
func (p *parser) listenAddr(key string) string {
	s := p.str(key)
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.invalid(key, s, "not host:port (e.g. :9911, 127.0.0.1:9911, [::1]:9911)")
		return s
	}
	if n, err := strconv.ParseUint(port, 10, 64); err != nil || n > 65535 {
		p.invalid(key, s, fmt.Sprintf("port %q is not a number from 0 to 65535", port))
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			p.invalid(key, s, fmt.Sprintf("host %q is not an IP address or localhost (leave it empty to listen on all addresses)", host))
		}
	}
	return s
}

// prefixes requires at least one CIDR, each a network address in canonical
// form (host bits zero) and none repeated.
func (p *parser) prefixes(key string) []netip.Prefix {
	elems := p.list(key)
	if len(elems) == 0 {
		p.invalid(key, "", "at least one CIDR is required")
		return nil
	}
	return p.parsePrefixes(key, elems)
}

// optionalPrefixes is prefixes for a list that may be empty; it returns nil
// then.
func (p *parser) optionalPrefixes(key string) []netip.Prefix {
	elems := p.list(key)
	if len(elems) == 0 {
		return nil
	}
	return p.parsePrefixes(key, elems)
}

func (p *parser) parsePrefixes(key string, elems []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(elems))
	seen := make(map[netip.Prefix]bool)
	for _, s := range elems {
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p.invalid(key, s, "not a CIDR (e.g. 10.96.0.0/12 or fd00:10:96::/112)")
		case pfx != pfx.Masked():
			p.invalid(key, s, fmt.Sprintf("not a network address (did you mean %s?)", pfx.Masked()))
		case seen[pfx]:
			p.invalid(key, s, "listed twice")
		default:
			seen[pfx] = true
			out = append(out, pfx)
		}
	}
	return out
}
