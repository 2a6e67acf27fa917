// Command kube-vpp-agent is kube-vpp's per-node agent: it programs VPP with
// the node's pod networking, services and policies.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/agent"
	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/vppapi"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := config.Load(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Print("kube-vpp-agent: the kube-vpp node agent\n\n", config.Usage())
		return config.ExitCode(err)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube-vpp-agent:", err)
		return config.ExitCode(err)
	}
	log, err := cfg.NewLogger()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube-vpp-agent:", err)
		return config.ExitInvalid
	}
	defer func() { _ = log.Sync() }()
	vppapi.RouteGovppLogs(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = agent.New(cfg, log).Run(ctx)
	var incompatible *vppapi.IncompatibleError
	switch {
	case errors.As(err, &incompatible):
		log.Error("refusing to program an incompatible VPP", zap.Error(err))
		fmt.Fprintln(os.Stderr, "kube-vpp-agent:", err)
		return config.ExitFailure
	case err != nil:
		log.Error("agent stopped", zap.Error(err))
		return config.ExitFailure
	}
	log.Info("agent stopped")
	return config.ExitOK
}
