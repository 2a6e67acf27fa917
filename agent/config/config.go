// Package config loads the kube-vpp agent's settings from a YAML file, the
// environment and the command line, and validates them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"
)

// Config holds the agent's validated settings, grouped like their keys.
type Config struct {
	// File is the config file that was read, "" if none.
	File string

	Node       Node
	VPP        VPP
	Kubernetes Kubernetes
	Log        Log
	HTTP       HTTP
	Ctl        Ctl
	Uplink     Uplink
	Network    Network
	Pods       Pods
	Services   Services
	BGP        BGP
}

// Node identifies the node the agent runs on.
type Node struct {
	Name string // node.name
}

// VPP configures the connection to VPP's binary API.
type VPP struct {
	Socket                string        // vpp.socket
	ConnectBackoffInitial time.Duration // vpp.connect-backoff-initial
	ConnectBackoffMax     time.Duration // vpp.connect-backoff-max
	HealthInterval        time.Duration // vpp.health-interval
	ReplyTimeout          time.Duration // vpp.reply-timeout
}

// Kubernetes says where Kubernetes objects come from.
type Kubernetes struct {
	Kubeconfig   string        // kubernetes.kubeconfig
	Manifests    string        // kubernetes.manifests
	ResyncPeriod time.Duration // kubernetes.resync-period; 0 disables resync
}

// InCluster reports whether the agent should use the in-cluster API config:
// neither a kubeconfig nor a manifests folder was given.
func (k Kubernetes) InCluster() bool { return k.Kubeconfig == "" && k.Manifests == "" }

// LogFormat is the encoding of log lines.
type LogFormat string

// Log formats.
const (
	LogConsole LogFormat = "console"
	LogJSON    LogFormat = "json"
)

// Log configures the agent's logger.
type Log struct {
	Level  zapcore.Level // log.level
	Format LogFormat     // log.format
}

// HTTP configures the status server.
type HTTP struct {
	Listen string // http.listen, host:port
}

// Ctl configures the socket kube-vppctl connects to.
type Ctl struct {
	Socket string // ctl.socket
}

// Uplink names the node's uplink.
type Uplink struct {
	Interface string // uplink.interface: the VPP interface facing the ToR
}

// Network holds cluster-wide address ranges.
type Network struct {
	ServiceCIDRs []netip.Prefix // network.service-cidrs
	// ExternalIPCIDRs bounds the Service externalIPs the agent honours
	// (network.external-ip-cidrs). Any user who may create a Service can
	// claim any IP as an externalIP (CVE-2020-8554), so none is honoured
	// unless an operator allowed its range.
	ExternalIPCIDRs []netip.Prefix
}

// Load reads the settings from args (the command line without the program
// name), the environment and the config file named by --config (or
// KUBE_VPP_CONFIG), in that order of precedence over the defaults.
//
// It returns pflag.ErrHelp when help was asked for; print Usage then.
// Invalid values are reported as *InvalidError, several of them joined.
func Load(args []string) (*Config, error) {
	fs := pflag.NewFlagSet(programName, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	configPath := fs.String(configFlag, "", "YAML config file to read")
	for _, o := range options() {
		switch {
		case o.flag == "":
		case o.list:
			fs.StringSlice(o.flag, splitList(o.def), o.help)
		case o.boolean:
			fs.Bool(o.flag, o.def == "true", o.help)
		default:
			fs.String(o.flag, o.def, o.help)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, pflag.ErrHelp
		}
		return nil, &flagError{err}
	}
	if fs.NArg() > 0 {
		return nil, &flagError{fmt.Errorf("unexpected argument %q: %s takes flags only", fs.Arg(0), programName)}
	}

	v := viper.New()
	path := *configPath
	if !fs.Changed(configFlag) {
		path = os.Getenv(configEnv)
	}
	if path != "" {
		if err := readFile(v, path); err != nil {
			return nil, err
		}
	}

	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(envReplacer())
	v.AutomaticEnv()
	for _, o := range options() {
		v.SetDefault(o.key, o.def)
		if o.flag != "" {
			if err := v.BindPFlag(o.key, fs.Lookup(o.flag)); err != nil {
				return nil, fmt.Errorf("bind flag --%s to %s: %w", o.flag, o.key, err)
			}
		}
	}

	cfg, err := parse(v)
	if err != nil {
		return nil, err
	}
	cfg.File = path
	return cfg, nil
}

// readFile loads the YAML file at path into v and refuses keys that no
// option defines, so that a misspelt key does not silently fall back to its
// default.
func readFile(v *viper.Viper, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &FileError{Path: path, Err: err}
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return &FileError{Path: path, Err: err}
	}

	known := make(map[string]bool)
	sections := make(map[string]bool) // every proper prefix of a key: "bgp", "bgp.advertise"
	for _, o := range options() {
		known[o.key] = true
		parts := strings.Split(o.key, ".")
		for i := 1; i < len(parts); i++ {
			sections[strings.Join(parts[:i], ".")] = true
		}
	}
	var errs []error
	keys := v.AllKeys()
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case known[k]:
		case sections[k]:
			// "vpp: x" would hide every vpp.* setting behind a scalar.
			if v.Get(k) != nil {
				errs = append(errs, fmt.Errorf("key %q must be a mapping of %s.* settings", k, k))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown key %q%s", k, suggestKey(k, known)))
		}
	}
	if len(errs) > 0 {
		return &FileError{Path: path, Err: errors.Join(errs...)}
	}
	return nil
}

// suggestKey returns " (did you mean K?)" for the known key closest to k, if
// one is close enough to be a likely misspelling.
func suggestKey(k string, known map[string]bool) string {
	best, bestDist := "", 4
	for cand := range known {
		if d := editDistance(k, cand); d < bestDist || d == bestDist && cand < best {
			best, bestDist = cand, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
