// Package plugin is the kube-vpp-cni binary kubelet runs: it checks the network
// configuration, forwards each CNI call to the kube-vpp agent's socket and prints
// the agent's answer the way the CNI spec asks.
package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kube-vpp/kube-vpp/cni"
)

// About is printed on stderr when the binary runs without CNI_COMMAND.
const About = "kube-vpp-cni: CNI plugin forwarding pod network calls to the kube-vpp agent"

const (
	// firstBackoff and dialBudget pace redials of an agent that is not (yet) up,
	// for instance while its pod restarts; agentTimeout bounds them further.
	firstBackoff = 100 * time.Millisecond
	dialBudget   = 3 * time.Second
)

// Versions returns the CNI spec versions the plugin supports.
func Versions() version.PluginInfo {
	return version.PluginSupports(cni.SupportedVersions()...)
}

// Main runs the plugin as kubelet invokes it (environment, stdin, stdout) and
// returns the process exit code. Errors are printed as CNI JSON on stdout.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	command := func(name string) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			out, cniErr := Exec(ctx, name, args)
			if cniErr != nil {
				return cniErr
			}
			if _, err := os.Stdout.Write(out); err != nil {
				return types.NewError(types.ErrIOFailure, "writing the result to stdout", err.Error())
			}
			return nil
		}
	}
	funcs := skel.CNIFuncs{
		Add:    command(cni.CommandAdd),
		Del:    command(cni.CommandDel),
		Check:  command(cni.CommandCheck),
		Status: command(cni.CommandStatus),
		GC:     command(cni.CommandGC),
	}
	if cniErr := skel.PluginMainFuncsWithError(funcs, Versions(), About); cniErr != nil {
		if err := cniErr.Print(); err != nil {
			fmt.Fprintf(os.Stderr, "kube-vpp-cni: writing the error to stdout: %v\n", err)
		}
		return 1
	}
	return 0
}

// Exec runs one CNI command on arguments as skel decodes them from kubelet's
// environment and stdin, and returns what goes to stdout. ADD prints the result in
// the configuration's cniVersion; DEL, CHECK, STATUS and GC print nothing on
// success; VERSION prints the supported versions.
func Exec(ctx context.Context, command string, args *skel.CmdArgs) ([]byte, *types.Error) {
	switch command {
	case "VERSION":
		var buf bytes.Buffer
		if err := Versions().Encode(&buf); err != nil {
			return nil, types.NewError(types.ErrIOFailure, "encoding the version info", err.Error())
		}
		return buf.Bytes(), nil
	case cni.CommandAdd, cni.CommandDel, cni.CommandCheck, cni.CommandStatus, cni.CommandGC:
	default:
		return nil, cni.Errorf(types.ErrInvalidEnvironmentVariables, "unknown CNI_COMMAND %q", command)
	}
	conf, err := cni.ParseNetConf(args.StdinData)
	if err != nil {
		return nil, cni.AsError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, conf.AgentTimeout.Duration)
	defer cancel()
	req := &cni.Request{
		Command:     command,
		ContainerID: args.ContainerID,
		Netns:       args.Netns,
		IfName:      args.IfName,
		Args:        args.Args,
		Path:        args.Path,
		Config:      args.StdinData,
	}
	reply, err := call(ctx, cni.NewClient(conf.AgentSocket), req)
	if err != nil {
		var unreachable *cni.UnreachableError
		if errors.As(err, &unreachable) {
			return nil, types.NewError(types.ErrTryAgainLater, "agent not reachable at "+conf.AgentSocket, unreachable.Err.Error())
		}
		return nil, cni.Errorf(types.ErrTryAgainLater, "%s: no answer from the agent at %s: %v", command, conf.AgentSocket, err)
	}
	if reply.Error != nil {
		return nil, reply.Error
	}
	if command != cni.CommandAdd {
		return nil, nil
	}
	return addResult(reply, conf)
}

// call sends the request, redialling with doubling pauses while the socket cannot
// be dialled, for at most dialBudget and never past ctx. Only dial failures are
// retried: they guarantee the agent never saw the call.
func call(ctx context.Context, client *cni.Client, req *cni.Request) (*cni.Reply, error) {
	giveUp := time.Now().Add(dialBudget)
	backoff := firstBackoff
	var last error // the last dial error that says why, rather than "deadline exceeded"
	for {
		reply, err := client.Do(ctx, req)
		var unreachable *cni.UnreachableError
		if err == nil || !errors.As(err, &unreachable) {
			if err != nil && last != nil && ctx.Err() != nil {
				return nil, last
			}
			return reply, err
		}
		if last == nil || ctx.Err() == nil {
			last = err
		}
		wait := min(backoff, time.Until(giveUp))
		if wait <= 0 {
			return nil, last
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, last
		case <-t.C:
		}
		backoff *= 2
	}
}

// addResult converts the agent's 1.1.0 result to the configuration's version and
// fills DNS from the configuration when the agent gave none.
func addResult(reply *cni.Reply, conf *cni.NetConf) ([]byte, *types.Error) {
	if len(reply.Result) == 0 {
		return nil, cni.Errorf(cni.CodeInternal, "ADD: the agent answered without a result")
	}
	decoded, err := types100.NewResult(reply.Result)
	if err != nil {
		return nil, cni.Errorf(cni.CodeInternal, "ADD: decoding the agent's result: %v", err)
	}
	res, err := types100.GetResult(decoded)
	if err != nil {
		return nil, cni.Errorf(cni.CodeInternal, "ADD: reading the agent's result: %v", err)
	}
	if res.DNS.IsEmpty() {
		res.DNS = conf.DNS
	}
	out, err := res.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return nil, cni.Errorf(cni.CodeInternal, "ADD: converting the result to cniVersion %s: %v", conf.CNIVersion, err)
	}
	var buf bytes.Buffer
	if err := out.PrintTo(&buf); err != nil {
		return nil, types.NewError(types.ErrIOFailure, "ADD: encoding the result", err.Error())
	}
	return buf.Bytes(), nil
}
