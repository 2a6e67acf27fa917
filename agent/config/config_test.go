package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"

	"github.com/kube-vpp/kube-vpp/bgp"
)

// writeConfig writes a YAML config file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func setenv(t *testing.T, env map[string]string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func TestLoadDefaults(t *testing.T) {
	got, err := Load([]string{"--node", "worker-1"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		Node: Node{Name: "worker-1"},
		VPP: VPP{
			Socket:                "/run/vpp/api.sock",
			ConnectBackoffInitial: 250 * time.Millisecond,
			ConnectBackoffMax:     5 * time.Second,
			HealthInterval:        time.Second,
			ReplyTimeout:          5 * time.Second,
		},
		Kubernetes: Kubernetes{ResyncPeriod: 10 * time.Minute},
		Log:        Log{Level: zapcore.InfoLevel, Format: LogConsole},
		HTTP:       HTTP{Listen: ":9911"},
		Ctl:        Ctl{Socket: "/run/kube-vpp/ctl.sock"},
		Network:    Network{ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}},
		Pods: Pods{
			CNISocket: "/run/kube-vpp/cni.sock", StateDir: "/var/lib/kube-vpp", Interface: PodInterfaceAuto,
			MTU: 1500, MemifDir: "/run/kube-vpp/memif", VhostDir: "/run/kube-vpp/vhost-user",
		},
		Services: Services{Enabled: true, HealthzBindAddress: "0.0.0.0:10256"},
		BGP: BGP{
			ListenPort:      179,
			GracefulRestart: bgp.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
			Advertise:       Advertise{PodCIDRs: true, ServiceCIDRs: true, LoadBalancerIPs: true, ExternalIPs: true},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load defaults:\n got %+v\nwant %+v", got, want)
	}
	if !got.Kubernetes.InCluster() {
		t.Error("neither kubeconfig nor manifests given: want in-cluster config")
	}
	if _, err := got.NewLogger(); err != nil {
		t.Errorf("NewLogger with defaults: %v", err)
	}
}

func TestLoadPrecedence(t *testing.T) {
	const file = `
node:
  name: from-file
vpp:
  socket: /file/api.sock
  health-interval: 3s
network:
  service-cidrs: [10.0.0.0/16, "fd00:1::/112"]
log:
  level: debug
`
	tests := []struct {
		name string
		file bool // pass the file above with --config
		env  map[string]string
		args []string
		want func(*Config) any
		exp  any
	}{
		{
			name: "file over default",
			file: true,
			want: func(c *Config) any { return c.VPP.Socket },
			exp:  "/file/api.sock",
		},
		{
			name: "env over file",
			file: true,
			env:  map[string]string{"KUBE_VPP_VPP_SOCKET": "/env/api.sock"},
			want: func(c *Config) any { return c.VPP.Socket },
			exp:  "/env/api.sock",
		},
		{
			name: "flag over env and file",
			file: true,
			env:  map[string]string{"KUBE_VPP_VPP_SOCKET": "/env/api.sock"},
			args: []string{"--vpp-socket=/flag/api.sock"},
			want: func(c *Config) any { return c.VPP.Socket },
			exp:  "/flag/api.sock",
		},
		{
			name: "env without file",
			env:  map[string]string{"KUBE_VPP_NODE_NAME": "from-env"},
			want: func(c *Config) any { return c.Node.Name },
			exp:  "from-env",
		},
		{
			name: "flag over env for node name",
			env:  map[string]string{"KUBE_VPP_NODE_NAME": "from-env"},
			args: []string{"--node", "from-flag"},
			want: func(c *Config) any { return c.Node.Name },
			exp:  "from-flag",
		},
		{
			name: "file sets a dashed key",
			file: true,
			want: func(c *Config) any { return c.VPP.HealthInterval },
			exp:  3 * time.Second,
		},
		{
			name: "env with dashes as underscores over file",
			file: true,
			env:  map[string]string{"KUBE_VPP_VPP_HEALTH_INTERVAL": "7s"},
			want: func(c *Config) any { return c.VPP.HealthInterval },
			exp:  7 * time.Second,
		},
		{
			name: "list from file",
			file: true,
			want: func(c *Config) any { return c.Network.ServiceCIDRs },
			exp:  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00:1::/112")},
		},
		{
			name: "comma-separated list from env over file",
			file: true,
			env:  map[string]string{"KUBE_VPP_NETWORK_SERVICE_CIDRS": "10.1.0.0/16, fd00:2::/112"},
			want: func(c *Config) any { return c.Network.ServiceCIDRs },
			exp:  []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:2::/112")},
		},
		{
			name: "comma-separated list from flag over env",
			env:  map[string]string{"KUBE_VPP_NETWORK_SERVICE_CIDRS": "10.1.0.0/16"},
			args: []string{"--service-cidrs", "10.2.0.0/16,fd00:3::/112"},
			want: func(c *Config) any { return c.Network.ServiceCIDRs },
			exp:  []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("fd00:3::/112")},
		},
		{
			name: "repeated list flag accumulates",
			args: []string{"--service-cidrs", "10.2.0.0/16", "--service-cidrs", "10.3.0.0/16"},
			want: func(c *Config) any { return c.Network.ServiceCIDRs },
			exp:  []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("10.3.0.0/16")},
		},
		{
			name: "level from file over default",
			file: true,
			want: func(c *Config) any { return c.Log.Level },
			exp:  zapcore.DebugLevel,
		},
		{
			name: "level flag over file",
			file: true,
			args: []string{"--log-level", "error"},
			want: func(c *Config) any { return c.Log.Level },
			exp:  zapcore.ErrorLevel,
		},
		{
			name: "untouched key keeps its default",
			file: true,
			env:  map[string]string{"KUBE_VPP_VPP_SOCKET": "/env/api.sock"},
			want: func(c *Config) any { return c.Ctl.Socket },
			exp:  "/run/kube-vpp/ctl.sock",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, tt.env)
			args := tt.args
			if _, ok := tt.env["KUBE_VPP_NODE_NAME"]; !ok && !tt.file && !hasFlag(args, "--node") {
				args = append(args, "--node=n1")
			}
			if tt.file {
				args = append(args, "--config", writeConfig(t, file))
			}
			cfg, err := Load(args)
			if err != nil {
				t.Fatalf("Load(%q): %v", args, err)
			}
			if got := tt.want(cfg); !reflect.DeepEqual(got, tt.exp) {
				t.Errorf("got %v, want %v", got, tt.exp)
			}
		})
	}
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func TestLoadConfigPathFromEnv(t *testing.T) {
	path := writeConfig(t, "node:\n  name: from-file\n")
	t.Setenv("KUBE_VPP_CONFIG", path)
	cfg, err := Load(nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Node.Name != "from-file" || cfg.File != path {
		t.Errorf("got node %q file %q, want from-file %q", cfg.Node.Name, cfg.File, path)
	}
}

func TestLoadAcceptsEdgeValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(*Config) bool
	}{
		{"port 0 picks a free port", []string{"--http-listen", "127.0.0.1:0"}, func(c *Config) bool { return c.HTTP.Listen == "127.0.0.1:0" }},
		{"IPv6 listen", []string{"--http-listen", "[::1]:65535"}, func(c *Config) bool { return c.HTTP.Listen == "[::1]:65535" }},
		{"localhost listen", []string{"--http-listen", "localhost:9911"}, func(c *Config) bool { return c.HTTP.Listen == "localhost:9911" }},
		{"upper-case level", []string{"--log-level", "WARN"}, func(c *Config) bool { return c.Log.Level == zapcore.WarnLevel }},
		{"json format", []string{"--log-format", "json"}, func(c *Config) bool { return c.Log.Format == LogJSON }},
		{"kubeconfig alone", []string{"--kubeconfig", "/etc/kube/config"}, func(c *Config) bool {
			return c.Kubernetes.Kubeconfig == "/etc/kube/config" && !c.Kubernetes.InCluster()
		}},
		{"manifests alone", []string{"--manifests", "/srv/manifests"}, func(c *Config) bool {
			return c.Kubernetes.Manifests == "/srv/manifests" && !c.Kubernetes.InCluster()
		}},
		{"uplink", []string{"--uplink-interface", "GigabitEthernet0/8/0"}, func(c *Config) bool { return c.Uplink.Interface == "GigabitEthernet0/8/0" }},
		{"IPv6 service CIDR", []string{"--service-cidrs", "fd00:10:96::/112"}, func(c *Config) bool {
			return reflect.DeepEqual(c.Network.ServiceCIDRs, []netip.Prefix{netip.MustParsePrefix("fd00:10:96::/112")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(append([]string{"--node", "n1"}, tt.args...))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tt.want(cfg) {
				t.Errorf("unexpected config %+v", cfg)
			}
		})
	}

	// A resync period of 0 turns resync off and is allowed.
	t.Setenv("KUBE_VPP_KUBERNETES_RESYNC_PERIOD", "0s")
	cfg, err := Load([]string{"--node", "n1"})
	if err != nil || cfg.Kubernetes.ResyncPeriod != 0 {
		t.Fatalf("resync 0s: cfg %+v, err %v", cfg, err)
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name      string
		noNode    bool // leave node.name unset
		file      string
		env       map[string]string
		args      []string
		key       string
		value     string
		reasonHas string
	}{
		{name: "missing node name", noNode: true, key: "node.name", value: "", reasonHas: "required"},
		{name: "node name not a DNS subdomain", args: []string{"--node", "Worker_1"}, key: "node.name", value: "Worker_1", reasonHas: "node name"},
		{name: "unparsable CIDR", args: []string{"--service-cidrs", "10.96.0.0/33"}, key: "network.service-cidrs", value: "10.96.0.0/33", reasonHas: "not a CIDR"},
		{name: "CIDR that is not an address", env: map[string]string{"KUBE_VPP_NETWORK_SERVICE_CIDRS": "10.96.0.0/12,services"}, key: "network.service-cidrs", value: "services", reasonHas: "not a CIDR"},
		{name: "non-canonical IPv4 CIDR", args: []string{"--service-cidrs", "10.96.0.1/12"}, key: "network.service-cidrs", value: "10.96.0.1/12", reasonHas: "did you mean 10.96.0.0/12?"},
		{name: "non-canonical IPv6 CIDR", file: "network:\n  service-cidrs: [\"fd00::1/108\"]\n", key: "network.service-cidrs", value: "fd00::1/108", reasonHas: "did you mean fd00::/108?"},
		{name: "empty CIDR list", args: []string{"--service-cidrs="}, key: "network.service-cidrs", reasonHas: "at least one"},
		{name: "duplicate CIDR", args: []string{"--service-cidrs", "10.96.0.0/12,10.96.0.0/12"}, key: "network.service-cidrs", value: "10.96.0.0/12", reasonHas: "twice"},
		{name: "unknown log level", args: []string{"--log-level", "verbose"}, key: "log.level", value: "verbose", reasonHas: "debug, info, warn, error"},
		{name: "zap level outside the allowed set", env: map[string]string{"KUBE_VPP_LOG_LEVEL": "fatal"}, key: "log.level", value: "fatal", reasonHas: "debug, info, warn, error"},
		{name: "unknown log format", file: "log:\n  format: xml\n", key: "log.format", value: "xml", reasonHas: "console or json"},
		{name: "port out of range", args: []string{"--http-listen", ":70000"}, key: "http.listen", value: ":70000", reasonHas: "0 to 65535"},
		{name: "named port", args: []string{"--http-listen", ":http"}, key: "http.listen", value: ":http", reasonHas: "0 to 65535"},
		{name: "missing port", args: []string{"--http-listen", "9911"}, key: "http.listen", value: "9911", reasonHas: "host:port"},
		{name: "host name", args: []string{"--http-listen", "example.com:9911"}, key: "http.listen", value: "example.com:9911", reasonHas: "not an IP address"},
		{name: "negative duration", env: map[string]string{"KUBE_VPP_VPP_HEALTH_INTERVAL": "-1s"}, key: "vpp.health-interval", value: "-1s", reasonHas: "greater than 0"},
		{name: "zero reply timeout", file: "vpp:\n  reply-timeout: 0s\n", key: "vpp.reply-timeout", value: "0s", reasonHas: "greater than 0"},
		{name: "negative backoff max", file: "vpp:\n  connect-backoff-max: -5s\n", key: "vpp.connect-backoff-max", value: "-5s", reasonHas: "greater than 0"},
		{name: "unknown pod interface", args: []string{"--pod-interface", "macvlan"}, key: "pods.interface", value: "macvlan", reasonHas: "auto, tap or veth"},
		{name: "pod MTU too small", args: []string{"--pod-mtu", "500"}, key: "pods.mtu", value: "500", reasonHas: "576 to 65535"},
		{name: "pod MTU not a number", env: map[string]string{"KUBE_VPP_PODS_MTU": "jumbo"}, key: "pods.mtu", value: "jumbo", reasonHas: "whole number"},
		{name: "empty CNI socket", args: []string{"--cni-socket="}, key: "cni.socket", value: "", reasonHas: "must not be empty"},
		{name: "negative resync period", env: map[string]string{"KUBE_VPP_KUBERNETES_RESYNC_PERIOD": "-1m"}, key: "kubernetes.resync-period", value: "-1m", reasonHas: "negative"},
		{name: "duration without unit", file: "vpp:\n  connect-backoff-initial: 5\n", key: "vpp.connect-backoff-initial", value: "5", reasonHas: "unit"},
		{name: "initial backoff above max", file: "vpp:\n  connect-backoff-initial: 10s\n  connect-backoff-max: 2s\n", key: "vpp.connect-backoff-initial", value: "10s", reasonHas: "vpp.connect-backoff-max (2s)"},
		{name: "manifests and kubeconfig", args: []string{"--manifests", "/m", "--kubeconfig", "/k"}, key: "kubernetes.manifests", value: "/m", reasonHas: "kubernetes.kubeconfig"},
		{name: "empty VPP socket", args: []string{"--vpp-socket="}, key: "vpp.socket", reasonHas: "empty"},
		{name: "empty ctl socket", file: "ctl:\n  socket: \"\"\n", key: "ctl.socket", reasonHas: "empty"},
		{name: "list for a single value", file: "log:\n  level: [debug]\n", key: "log.level", value: "[debug]", reasonHas: "single value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, tt.env)
			var args []string
			if !tt.noNode {
				args = append(args, "--node=n1") // a later --node wins
			}
			args = append(args, tt.args...)
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			wantInvalid(t, args, tt.key, tt.value, tt.reasonHas)
		})
	}
}

// wantInvalid loads args and checks the error reports key invalid with
// value and a reason containing reasonHas, names the key, and exits with
// ExitInvalid.
func wantInvalid(t *testing.T, args []string, key, value, reasonHas string) {
	t.Helper()
	cfg, err := Load(args)
	if err == nil {
		t.Fatalf("Load(%q) = %+v, want an error for %s", args, cfg, key)
	}
	ie := findInvalid(err, key)
	if ie == nil {
		t.Fatalf("Load(%q) error %q names no invalid %s", args, err, key)
	}
	if ie.Value != value || !strings.Contains(ie.Reason, reasonHas) {
		t.Errorf("got %q, want value %q and a reason containing %q", ie, value, reasonHas)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("error %q does not name %s", err, key)
	}
	if got := ExitCode(err); got != ExitInvalid {
		t.Errorf("ExitCode = %d, want %d", got, ExitInvalid)
	}
}

// findInvalid returns the *InvalidError for key within err (which may join
// several), or nil.
func findInvalid(err error, key string) *InvalidError {
	var ie *InvalidError
	if errors.As(err, &ie) && ie.Key == key {
		return ie
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if ie := findInvalid(e, key); ie != nil {
				return ie
			}
		}
	}
	return nil
}

func TestLoadReportsEveryInvalidValue(t *testing.T) {
	_, err := Load([]string{"--log-level", "loud", "--http-listen", ":70000"})
	for _, key := range []string{"node.name", "log.level", "http.listen"} {
		if findInvalid(err, key) == nil {
			t.Errorf("error %q does not report %s", err, key)
		}
	}
}

func TestInvalidErrorMessage(t *testing.T) {
	_, err := Load([]string{"--node", "n1", "--service-cidrs", "10.96.0.1/12"})
	const want = `invalid value "10.96.0.1/12" for network.service-cidrs: not a network address (did you mean 10.96.0.0/12?)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantHas []string
	}{
		{"unknown key", writeConfig(t, "vpp:\n  sockett: /x\n"), []string{`unknown key "vpp.sockett"`, "did you mean vpp.socket?"}},
		{"unknown section", writeConfig(t, "node:\n  name: n1\nospf:\n  area: 0\n"), []string{`unknown key "ospf.area"`}},
		{"key at the wrong level", writeConfig(t, "socket: /x\n"), []string{`unknown key "socket"`}},
		{"section given a scalar", writeConfig(t, "vpp: /run/vpp/api.sock\n"), []string{`"vpp" must be a mapping`}},
		{"missing file", filepath.Join(dir, "absent.yaml"), []string{"absent.yaml", "no such file"}},
		{"directory", dir, []string{dir}},
		{"not YAML", writeConfig(t, "node: [unclosed\n"), []string{"config.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]string{"--node", "n1", "--config", tt.path})
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FileError", err)
			}
			for _, s := range tt.wantHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if got := ExitCode(err); got != 2 {
				t.Errorf("ExitCode = %d, want 2", got)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	loadErr := func(args ...string) error {
		_, err := Load(args)
		return err
	}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"no error", nil, 0},
		{"--help", loadErr("--help"), 0},
		{"-h", loadErr("-h"), 0},
		{"invalid value", loadErr("--node", "n1", "--log-format", "yaml"), 2},
		{"invalid value wrapped", fmt.Errorf("agent: %w", &InvalidError{Key: "log.level"}), 2},
		{"unknown flag", loadErr("--node", "n1", "--bogus"), 2},
		{"flag without its value", loadErr("--node"), 2},
		{"positional argument", loadErr("--node", "n1", "extra"), 2},
		{"flag for a key without one", loadErr("--node", "n1", "--vpp-reply-timeout", "1s"), 2},
		{"unreadable file", loadErr("--node", "n1", "--config", "/nonexistent/kube-vpp.yaml"), 2},
		{"runtime failure", errors.New("VPP incompatible: 3 messages differ"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
	if err := loadErr("--help"); err != pflag.ErrHelp {
		t.Errorf("Load(--help) = %v, want pflag.ErrHelp itself", err)
	}
}

func TestUsageMentionsEverySetting(t *testing.T) {
	u := Usage()
	want := []string{
		"--config", "KUBE_VPP_CONFIG", "--help",
		"--node", "node.name", "KUBE_VPP_NODE_NAME",
		"--vpp-socket", "vpp.socket", "KUBE_VPP_VPP_SOCKET", "/run/vpp/api.sock",
		"vpp.connect-backoff-initial", "KUBE_VPP_VPP_CONNECT_BACKOFF_INITIAL", "250ms",
		"vpp.connect-backoff-max", "KUBE_VPP_VPP_CONNECT_BACKOFF_MAX",
		"vpp.health-interval", "KUBE_VPP_VPP_HEALTH_INTERVAL",
		"vpp.reply-timeout", "KUBE_VPP_VPP_REPLY_TIMEOUT",
		"--kubeconfig", "kubernetes.kubeconfig", "KUBE_VPP_KUBERNETES_KUBECONFIG",
		"--manifests", "kubernetes.manifests", "KUBE_VPP_KUBERNETES_MANIFESTS",
		"kubernetes.resync-period", "KUBE_VPP_KUBERNETES_RESYNC_PERIOD", "10m",
		"--log-level", "log.level", "KUBE_VPP_LOG_LEVEL",
		"--log-format", "log.format", "KUBE_VPP_LOG_FORMAT", "console",
		"--http-listen", "http.listen", "KUBE_VPP_HTTP_LISTEN", ":9911",
		"--ctl-socket", "ctl.socket", "KUBE_VPP_CTL_SOCKET", "/run/kube-vpp/ctl.sock",
		"--uplink-interface", "uplink.interface", "KUBE_VPP_UPLINK_INTERFACE",
		"--service-cidrs", "network.service-cidrs", "KUBE_VPP_NETWORK_SERVICE_CIDRS", "10.96.0.0/12",
	}
	for _, s := range want {
		if !strings.Contains(u, s) {
			t.Errorf("Usage does not mention %q:\n%s", s, u)
		}
	}
}
