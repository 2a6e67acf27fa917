// Package cni holds the protocol between the kube-vpp-cni plugin binary and the
// kube-vpp agent: one JSON-over-HTTP call per CNI invocation on a root-only unix
// socket, the server that accepts those calls in the agent, the client the plugin
// uses, and the parsing of the network configuration both sides read.
package cni

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"

	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// CNI commands as kubelet passes them in CNI_COMMAND. VERSION never reaches the agent.
const (
	CommandAdd    = "ADD"
	CommandDel    = "DEL"
	CommandCheck  = "CHECK"
	CommandStatus = "STATUS"
	CommandGC     = "GC"
)

// Keys kubelet puts into CNI_ARGS.
const (
	ArgPodNamespace = "K8S_POD_NAMESPACE"
	ArgPodName      = "K8S_POD_NAME"
)

// DefaultSocketPath is where the agent serves CNI calls unless configured otherwise.
const DefaultSocketPath = "/run/kube-vpp/cni.sock"

// Request is one CNI call as kubelet made it, forwarded verbatim.
type Request struct {
	Command     string          `json:"command"` // ADD, DEL, CHECK, STATUS, GC
	ContainerID string          `json:"containerID"`
	Netns       string          `json:"netns"`
	IfName      string          `json:"ifName"`
	Args        string          `json:"args"` // raw CNI_ARGS
	Path        string          `json:"path"`
	Config      json.RawMessage `json:"config"` // the network configuration from stdin
}

// Reply carries either the result (CNI 1.1.0 types/100 JSON) or a CNI error.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *types.Error    `json:"error,omitempty"`
}

// Handler serves decoded requests. An error that is (or wraps) *types.Error keeps
// its code; any other error becomes CodeInternal with its text. ADD must return a
// result; the other commands may return nil.
type Handler interface {
	Serve(ctx context.Context, req *Request) (*types100.Result, error)
}

// PodRef names the pod a CNI call is for.
type PodRef struct {
	Namespace, Name string
}

// String returns namespace/name.
func (r PodRef) String() string { return r.Namespace + "/" + r.Name }

// Pod returns the pod named by K8S_POD_NAMESPACE and K8S_POD_NAME in the request's
// args. ADD requires both (error code 4 naming the missing key); other commands
// return what is present, since kubelet may call DEL for a sandbox it knows little of.
func (r *Request) Pod() (PodRef, error) {
	args, err := ParseArgs(r.Args)
	if err != nil {
		return PodRef{}, err
	}
	ref := PodRef{Namespace: args[ArgPodNamespace], Name: args[ArgPodName]}
	if r.Command == CommandAdd {
		for _, k := range []string{ArgPodNamespace, ArgPodName} {
			if args[k] == "" {
				return PodRef{}, Errorf(types.ErrInvalidEnvironmentVariables,
					"CNI_ARGS of container %s: %s is missing", ShortID(r.ContainerID), k)
			}
		}
	}
	return ref, nil
}

// ParseArgs splits CNI_ARGS ("K=V;K=V") into a map. Like libcni's types.LoadArgs,
// every pair must have exactly one '='; a later duplicate key wins. An empty string
// gives an empty map. Errors are *types.Error with code 4 (invalid environment).
func ParseArgs(args string) (map[string]string, error) {
	out := make(map[string]string)
	if args == "" {
		return out, nil
	}
	for i, pair := range strings.Split(args, ";") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k == "" || strings.Contains(v, "=") {
			return nil, Errorf(types.ErrInvalidEnvironmentVariables,
				"CNI_ARGS: pair %d %q is not KEY=VALUE", i+1, pair)
		}
		out[k] = v
	}
	return out, nil
}

// ShortID returns the first 12 characters of a container ID, as docker and crictl show it.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Validate checks the fields the command needs, the same way skel checks kubelet's
// environment: containerID and ifName for ADD, DEL and CHECK, netns for ADD and
// CHECK, well-formed args, and a config that is a JSON object. Errors are
// *types.Error with code 4 (fields) or 7 (config).
func (r *Request) Validate() error {
	switch r.Command {
	case "":
		return Errorf(types.ErrInvalidEnvironmentVariables, "request: command is missing")
	case CommandAdd, CommandDel, CommandCheck:
		if r.ContainerID == "" {
			return Errorf(types.ErrInvalidEnvironmentVariables, "%s request: containerID is missing", r.Command)
		}
		if e := utils.ValidateContainerID(r.ContainerID); e != nil {
			return Errorf(types.ErrInvalidEnvironmentVariables, "%s request: containerID %q: %s", r.Command, r.ContainerID, e.Msg)
		}
		if e := utils.ValidateInterfaceName(r.IfName); e != nil {
			return Errorf(types.ErrInvalidEnvironmentVariables, "%s request for container %s: ifName %q: %s",
				r.Command, ShortID(r.ContainerID), r.IfName, e.Msg)
		}
		if r.Netns == "" && r.Command != CommandDel {
			return Errorf(types.ErrInvalidEnvironmentVariables, "%s request for container %s: netns is missing",
				r.Command, ShortID(r.ContainerID))
		}
	case CommandStatus, CommandGC:
	default:
		return Errorf(types.ErrInvalidEnvironmentVariables, "request: unknown command %q", r.Command)
	}
	if _, err := ParseArgs(r.Args); err != nil {
		return err
	}
	if !isJSONObject(r.Config) {
		return Errorf(types.ErrInvalidNetworkConfig, "%s request: config is not a JSON object", r.Command)
	}
	return nil
}

func isJSONObject(raw json.RawMessage) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(raw, &obj) == nil && obj != nil
}
