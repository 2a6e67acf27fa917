package cni

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"sigs.k8s.io/yaml"
)

func TestParseNetConf(t *testing.T) {
	tests := []struct {
		name        string
		conf        string
		wantCode    uint   // 0: no error
		wantInMsg   string // the field the message must name
		wantSocket  string
		wantTimeout time.Duration
		wantMTU     int
	}{
		{
			name: "full entry",
			conf: `{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni","agentSocket":"/run/x/cni.sock",
				"agentTimeout":"90s","dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]},"mtu":1450}`,
			wantSocket: "/run/x/cni.sock", wantTimeout: 90 * time.Second, wantMTU: 1450,
		},
		{
			name:       "defaults for socket, timeout and mtu",
			conf:       `{"cniVersion":"0.4.0","name":"kube-vpp","type":"kube-vpp-cni"}`,
			wantSocket: DefaultSocketPath, wantTimeout: DefaultAgentTimeout, wantMTU: 0,
		},
		{
			name:       "oldest supported version",
			conf:       `{"cniVersion":"0.3.0","name":"n","type":"t"}`,
			wantSocket: DefaultSocketPath, wantTimeout: DefaultAgentTimeout,
		},
		{
			name:       "unknown fields are ignored, as every CNI plugin does",
			conf:       `{"cniVersion":"1.0.0","name":"n","type":"t","somethingElse":{"a":1}}`,
			wantSocket: DefaultSocketPath, wantTimeout: DefaultAgentTimeout,
		},
		{name: "not JSON", conf: `cniVersion: 1.1.0`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "JSON"},
		{name: "JSON array", conf: `[]`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "JSON"},
		{name: "truncated", conf: `{"cniVersion":"1.1.0",`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "JSON"},
		{name: "missing name", conf: `{"cniVersion":"1.1.0","type":"t"}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "name"},
		{name: "name with a slash", conf: `{"cniVersion":"1.1.0","name":"a/b","type":"t"}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "name"},
		{name: "missing type", conf: `{"cniVersion":"1.1.0","name":"n"}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "type"},
		{name: "missing cniVersion", conf: `{"name":"n","type":"t"}`, wantCode: types.ErrIncompatibleCNIVersion, wantInMsg: "cniVersion"},
		{name: "cniVersion 0.2.0 unsupported", conf: `{"cniVersion":"0.2.0","name":"n","type":"t"}`, wantCode: types.ErrIncompatibleCNIVersion, wantInMsg: "cniVersion"},
		{name: "cniVersion from the future", conf: `{"cniVersion":"2.0.0","name":"n","type":"t"}`, wantCode: types.ErrIncompatibleCNIVersion, wantInMsg: "cniVersion"},
		{name: "negative mtu", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","mtu":-1}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "mtu"},
		{name: "mtu above 65535", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","mtu":65536}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "mtu"},
		{name: "mtu as a string", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","mtu":"1500"}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "mtu"},
		{name: "timeout without unit", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","agentTimeout":"60"}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "agentTimeout"},
		{name: "timeout as a number", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","agentTimeout":60}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "agentTimeout"},
		{name: "negative timeout", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","agentTimeout":"-1s"}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "agentTimeout"},
		{name: "relative socket", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","agentSocket":"cni.sock"}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "agentSocket"},
		{name: "prevResult not a result", conf: `{"cniVersion":"1.1.0","name":"n","type":"t","prevResult":{"ips":"x"}}`, wantCode: types.ErrInvalidNetworkConfig, wantInMsg: "prevResult"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := ParseNetConf([]byte(tt.conf))
			if tt.wantCode != 0 {
				var cniErr *types.Error
				if !errors.As(err, &cniErr) {
					t.Fatalf("ParseNetConf: err = %v (%T), want *types.Error code %d", err, err, tt.wantCode)
				}
				if cniErr.Code != tt.wantCode || !strings.Contains(cniErr.Msg, tt.wantInMsg) {
					t.Fatalf("ParseNetConf: error code %d %q, want code %d naming %q", cniErr.Code, cniErr.Msg, tt.wantCode, tt.wantInMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNetConf: %v", err)
			}
			if conf.AgentSocket != tt.wantSocket || conf.AgentTimeout.Duration != tt.wantTimeout || conf.MTU != tt.wantMTU {
				t.Fatalf("ParseNetConf = socket %q timeout %s mtu %d, want %q %s %d",
					conf.AgentSocket, conf.AgentTimeout.Duration, conf.MTU, tt.wantSocket, tt.wantTimeout, tt.wantMTU)
			}
		})
	}
}

func TestParseNetConfPrevResult(t *testing.T) {
	// CHECK passes the ADD result back as prevResult (CNI spec, "CHECK").
	conf, err := ParseNetConf([]byte(`{"cniVersion":"1.1.0","name":"n","type":"t",
		"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5/24"}]}}`))
	if err != nil {
		t.Fatalf("ParseNetConf: %v", err)
	}
	if conf.PrevResult == nil || conf.PrevResult.Version() != "1.1.0" {
		t.Fatalf("PrevResult = %v, want a 1.1.0 result", conf.PrevResult)
	}
}

func TestNetConfMarshalKeepsOwnFields(t *testing.T) {
	in := []byte(`{"cniVersion":"1.1.0","name":"n","type":"t","agentSocket":"/s","agentTimeout":"5s","mtu":9000,
		"dns":{"nameservers":["10.96.0.10"]}}`)
	conf, err := ParseNetConf(in)
	if err != nil {
		t.Fatalf("ParseNetConf: %v", err)
	}
	// Marshal through a pointer: that is where the promoted PluginConf method would win.
	out, err := json.Marshal(conf)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	again, err := ParseNetConf(out)
	if err != nil {
		t.Fatalf("ParseNetConf(%s): %v", out, err)
	}
	if again.AgentSocket != "/s" || again.AgentTimeout.Duration != 5*time.Second || again.MTU != 9000 ||
		len(again.DNS.Nameservers) != 1 || again.Name != "n" {
		t.Fatalf("round trip lost fields: %s", out)
	}
}

// TestDeployedConflist parses the plugin entry of deploy/07-cni-config.yaml the way
// libcni hands it to the plugin: the list's name and cniVersion copied in.
func TestDeployedConflist(t *testing.T) {
	raw, err := os.ReadFile("../deploy/07-cni-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatalf("ConfigMap: %v", err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(cm.Data["10-kube-vpp.conflist"]), &list); err != nil {
		t.Fatalf("10-kube-vpp.conflist: %v", err)
	}
	if len(list.Plugins) != 1 {
		t.Fatalf("conflist has %d plugins, want 1", len(list.Plugins))
	}
	entry := list.Plugins[0]
	entry["name"], entry["cniVersion"] = list.Name, list.CNIVersion
	stdin, err := json.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ParseNetConf(stdin)
	if err != nil {
		t.Fatalf("ParseNetConf(%s): %v", stdin, err)
	}
	if conf.Type != "kube-vpp-cni" || conf.AgentSocket != DefaultSocketPath || conf.AgentTimeout.Duration != DefaultAgentTimeout {
		t.Fatalf("deployed conf = %+v", conf)
	}
}
