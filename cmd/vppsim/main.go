// Command vppsim runs the VPP simulator on a unix socket until SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("vppsim", flag.ContinueOnError)
	socket := fs.String("socket", "/run/vpp/api.sock", "API socket to listen on")
	debug := fs.Bool("debug", false, "log every request")
	noVhostNet := fs.Bool("no-vhost-net", false, "fail tap_create_v3 as VPP does on a host without /dev/vhost-net")
	noHost := fs.Bool("no-host", false, "make only VPP's side of taps, af_packet, memif and vhost-user interfaces: no namespaces, devices or sockets on the host")
	var ifaces, corrupt listFlag
	fs.Var(&ifaces, "interface", "NIC present at start, as NAME or NAME=ADDR/LEN[,ADDR/LEN...], admin up (repeatable)")
	fs.Var(&corrupt, "corrupt-crc", "advertise a wrong CRC for this message (repeatable; for testing clients)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	opts := sim.Options{PID: uint32(os.Getpid()), CorruptCRC: corrupt, NoVhostNet: *noVhostNet, NoHost: *noHost}
	for _, spec := range ifaces {
		s, err := parseInterface(spec)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vppsim: --interface %q: %v\n", spec, err)
			return 2
		}
		opts.Interfaces = append(opts.Interfaces, s)
	}
	cfg := zap.NewDevelopmentConfig()
	if !*debug {
		cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	}
	log, err := cfg.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vppsim:", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	opts.Logger = log

	s, err := sim.New(opts)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := s.Run(ctx, *socket); err != nil {
		log.Error("simulator stopped", zap.Error(err))
		return 1
	}
	return 0
}

func parseInterface(spec string) (sim.InterfaceSpec, error) {
	name, addrs, _ := strings.Cut(spec, "=")
	if name == "" {
		return sim.InterfaceSpec{}, fmt.Errorf("empty interface name")
	}
	s := sim.InterfaceSpec{Name: name, Up: true}
	if addrs != "" {
		s.Addresses = strings.Split(addrs, ",")
	}
	return s, nil
}
