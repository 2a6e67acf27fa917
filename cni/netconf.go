package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
)

// DefaultAgentTimeout bounds one plugin call to the agent when the configuration
// does not say otherwise.
const DefaultAgentTimeout = 60 * time.Second

// maxMTU is the largest MTU a Linux interface takes (IP_MAX_MTU, 0xFFFF).
const maxMTU = 65535

// SupportedVersions lists the CNI spec versions the plugin and the agent accept.
func SupportedVersions() []string {
	return []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
}

// NetConf is the kube-vpp-cni entry of the conflist, as kubelet hands it to the
// plugin on stdin (with name and cniVersion copied in from the list).
type NetConf struct {
	types.PluginConf
	// AgentSocket is the agent's CNI socket; DefaultSocketPath when empty.
	AgentSocket string `json:"agentSocket,omitempty"`
	// AgentTimeout bounds one call to the agent; DefaultAgentTimeout when zero.
	AgentTimeout Duration `json:"agentTimeout,omitempty"`
	// MTU of the pod interface; 0 lets the agent choose.
	MTU int `json:"mtu,omitempty"`
}

// MarshalJSON writes the embedded PluginConf fields and kube-vpp's own. Without it
// the promoted (*types.PluginConf).MarshalJSON would drop the kube-vpp fields.
func (c NetConf) MarshalJSON() ([]byte, error) {
	base, err := c.PluginConf.MarshalJSON()
	if err != nil {
		return nil, err
	}
	obj := make(map[string]any)
	if err := json.Unmarshal(base, &obj); err != nil {
		return nil, err
	}
	if c.AgentSocket != "" {
		obj["agentSocket"] = c.AgentSocket
	}
	if c.AgentTimeout.Duration != 0 {
		obj["agentTimeout"] = c.AgentTimeout
	}
	if c.MTU != 0 {
		obj["mtu"] = c.MTU
	}
	return json.Marshal(obj)
}

// Duration is a time.Duration written in JSON as a Go duration string ("60s").
type Duration struct {
	time.Duration
}

// MarshalJSON writes the duration as a string such as "1m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string such as "60s" or "1m30s".
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return &durationError{fmt.Sprintf("want a duration string such as \"60s\", got %s", data)}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &durationError{err.Error()}
	}
	d.Duration = v
	return nil
}

// durationError lets ParseNetConf name the field a bad duration came from.
type durationError struct{ msg string }

func (e *durationError) Error() string { return e.msg }

// ParseNetConf decodes and checks the network configuration kubelet passes on
// stdin and fills in defaults. Errors are *types.Error with code 1
// (ErrIncompatibleCNIVersion) for a missing or unsupported cniVersion and code 7
// (ErrInvalidNetworkConfig) otherwise, each naming the field. A prevResult, as
// CHECK carries, is decoded into PrevResult.
func ParseNetConf(stdin []byte) (*NetConf, error) {
	var conf NetConf
	if err := json.Unmarshal(stdin, &conf); err != nil {
		var de *durationError
		if errors.As(err, &de) {
			return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration: agentTimeout: %s", de.msg)
		}
		return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration is not valid JSON: %v", err)
	}
	if e := utils.ValidateNetworkName(conf.Name); e != nil {
		return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration: name %q: %s",
			conf.Name, strings.TrimSuffix(e.Msg, ":"))
	}
	supported := SupportedVersions()
	if conf.CNIVersion == "" {
		return nil, Errorf(types.ErrIncompatibleCNIVersion, "network configuration %s: cniVersion is missing (supported: %s)",
			conf.Name, strings.Join(supported, ", "))
	}
	if !slices.Contains(supported, conf.CNIVersion) {
		return nil, Errorf(types.ErrIncompatibleCNIVersion, "network configuration %s: cniVersion %q is not supported (supported: %s)",
			conf.Name, conf.CNIVersion, strings.Join(supported, ", "))
	}
	if conf.Type == "" {
		return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration %s: type is missing", conf.Name)
	}
	if conf.MTU < 0 || conf.MTU > maxMTU {
		return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration %s: mtu %d is outside 0-%d",
			conf.Name, conf.MTU, maxMTU)
	}
	switch {
	case conf.AgentTimeout.Duration < 0:
		return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration %s: agentTimeout %s is negative",
			conf.Name, conf.AgentTimeout.Duration)
	case conf.AgentTimeout.Duration == 0:
		conf.AgentTimeout.Duration = DefaultAgentTimeout
	}
	switch {
	case conf.AgentSocket == "":
		conf.AgentSocket = DefaultSocketPath
	case !filepath.IsAbs(conf.AgentSocket):
		return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration %s: agentSocket %q is not an absolute path",
			conf.Name, conf.AgentSocket)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, Errorf(types.ErrInvalidNetworkConfig, "network configuration %s: prevResult: %v", conf.Name, err)
		}
	}
	return &conf, nil
}
