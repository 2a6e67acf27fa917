// Command kube-vppctl inspects a running kube-vpp agent through its local
// control socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/bgp"
	"github.com/kube-vpp/kube-vpp/cni/pods"
)

const usage = `kube-vppctl talks to the kube-vpp agent on this node.

Usage:
  kube-vppctl [--socket PATH] version
  kube-vppctl [--socket PATH] status [--wait DURATION]
  kube-vppctl [--socket PATH] show bgp
  kube-vppctl [--socket PATH] show pods
  kube-vppctl [--socket PATH] show services
  kube-vppctl [--socket PATH] show events
  kube-vppctl [--socket PATH] show policies
  kube-vppctl [--socket PATH] trace --from <ns/pod|IP> --to <IP>:<port>/<tcp|udp> [--count N] [-o json] [-v]
  kube-vppctl trace --manifests DIR [--node NAME] --from ... --to ...
  kube-vppctl [--socket PATH] vppctl -- <VPP CLI words>

Commands:
  version   print the agent's version and the version of the VPP it drives
  status    print whether the agent is connected to VPP and in sync; with
            --wait, wait up to DURATION for readiness (exit 1 if never ready)
  show bgp  BGP peers with their state and uptime, advertised and learned routes
  show pods pods this node plumbed: kind, IPs, VPP interfaces and host routes
  show services
            services with their frontends (ClusterIP, NodePort, LoadBalancer,
            external IPs), the backends VPP's NAT44-ED mappings send to, and
            why a frontend has none
  show policies
            this node's pods with their ACL tables (ingress on the pod
            interface's output, egress on its input) and the policies behind them
  show events
            the latest Warning Events the agent recorded (also sent to the
            API server; with a manifests folder this is where they show)
  trace     evaluate connections through VPP's graph and print each packet's
            verdict (forwarded, dropped, rejected), NAT translations and egress
            interface; with --manifests, offline: the agent of --node (default
            the only or first Node) and a simulated VPP run in this process
  vppctl    pass a command to VPP's debug CLI (cli_inband) and print the answer
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kube-vppctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	socket := fs.String("socket", "/run/kube-vpp/ctl.sock", "agent control socket")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := ctl.NewClient(*socket)

	switch rest[0] {
	case "version":
		v, err := c.Version(ctx)
		if err != nil {
			fmt.Fprintln(stderr, "kube-vppctl:", err)
			return 1
		}
		fmt.Fprintf(stdout, "agent:        %s (built for VPP %s)\n", v.Agent, v.BuiltForVPP)
		if v.VPPConnected {
			fmt.Fprintf(stdout, "vpp:          %s (built %s, pid %d)\n", v.VPP, v.VPPBuildDate, v.VPPPID)
		} else {
			fmt.Fprintln(stdout, "vpp:          not connected")
		}
		return 0
	case "show":
		what := ""
		if len(rest) == 2 {
			what = rest[1]
		}
		switch what {
		case "bgp":
			st, err := c.BGP(ctx)
			if err != nil {
				fmt.Fprintln(stderr, "kube-vppctl:", err)
				return 1
			}
			printBGP(stdout, st)
		case "pods":
			list, err := c.Pods(ctx)
			if err != nil {
				fmt.Fprintln(stderr, "kube-vppctl:", err)
				return 1
			}
			printPods(stdout, list)
		case "policies":
			list, err := c.Policies(ctx)
			if err != nil {
				fmt.Fprintln(stderr, "kube-vppctl:", err)
				return 1
			}
			printPolicies(stdout, list)
		case "events":
			list, err := c.Events(ctx)
			if err != nil {
				fmt.Fprintln(stderr, "kube-vppctl:", err)
				return 1
			}
			for _, e := range list {
				fmt.Fprintf(stdout, "%s  %s  %s %s  %s: %s\n", e.Time.Format(time.TimeOnly), e.Type, e.Kind, e.Object, e.Reason, e.Message)
			}
		case "services":
			list, err := c.Services(ctx)
			if err != nil {
				fmt.Fprintln(stderr, "kube-vppctl:", err)
				return 1
			}
			printServices(stdout, list)
		default:
			fmt.Fprintln(stderr, "kube-vppctl: show what? (show bgp | show pods | show services | show policies | show events)")
			return 2
		}
		return 0
	case "trace":
		return trace(ctx, c, rest[1:], stdout, stderr)
	case "status":
		return status(ctx, c, rest[1:], stdout, stderr)
	case "vppctl":
		words := rest[1:]
		if len(words) > 0 && words[0] == "--" {
			words = words[1:]
		}
		if len(words) == 0 {
			fmt.Fprintln(stderr, "kube-vppctl: vppctl needs a command, e.g. kube-vppctl vppctl -- show interface")
			return 2
		}
		out, err := c.CLI(ctx, strings.Join(words, " "))
		if err != nil {
			fmt.Fprintln(stderr, "kube-vppctl:", err)
			return 1
		}
		fmt.Fprint(stdout, out)
		if out != "" && !strings.HasSuffix(out, "\n") {
			fmt.Fprintln(stdout)
		}
		return 0
	default:
		fmt.Fprintf(stderr, "kube-vppctl: unknown command %q\n", rest[0])
		fs.Usage()
		return 2
	}
}

func status(ctx context.Context, c *ctl.Client, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	wait := fs.Duration("wait", 0, "wait up to this long for the agent to be ready")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	deadline := time.Now().Add(*wait)
	for {
		st, err := c.Status(ctx)
		if err == nil && (st.Ready || *wait == 0) {
			printStatus(stdout, st)
			if !st.Ready {
				return 1
			}
			return 0
		}
		if time.Now().After(deadline) {
			if err != nil {
				fmt.Fprintln(stderr, "kube-vppctl:", err)
			} else {
				printStatus(stdout, st)
			}
			return 1
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "kube-vppctl:", ctx.Err())
			return 1
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printStatus(w io.Writer, st ctl.StatusInfo) {
	state := "ready"
	if !st.Ready {
		state = "not ready: " + st.Reason
	}
	fmt.Fprintf(w, "agent:        %s\n", state)
	fmt.Fprintf(w, "vpp:          connected=%v\n", st.VPPConnected)
	fmt.Fprintf(w, "syncs:        %d", st.Syncs)
	if !st.LastSync.IsZero() {
		fmt.Fprintf(w, " (last %s)", st.LastSync.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if st.LastSyncError != "" {
		fmt.Fprintf(w, "last error:   %s\n", st.LastSyncError)
	}
}

func printBGP(w io.Writer, st bgp.Status) {
	fmt.Fprintf(w, "BGP ASN %d, router ID %s\n\n", st.ASN, st.RouterID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tASN\tSTATE\tUPTIME\tRECEIVED\tADVERTISED")
	for _, p := range st.Peers {
		up := "-"
		if p.State == "established" {
			up = p.Uptime.Truncate(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\n", p.Address, p.ASN, p.State, up, p.Received, p.Advertised)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nAdvertised (%d):\n", len(st.Advertised))
	for _, a := range st.Advertised {
		fmt.Fprintf(w, "  %-24s next hop %-16s %s\n", a.Prefix, a.NextHop, a.Reason)
	}
	fmt.Fprintf(w, "\nLearned (%d):\n", len(st.Learned))
	for _, l := range st.Learned {
		hops := make([]string, len(l.NextHops))
		for i, h := range l.NextHops {
			hops[i] = h.String()
		}
		fmt.Fprintf(w, "  %-24s via %s\n", l.Prefix, strings.Join(hops, ", "))
	}
}

func printPods(w io.Writer, list []pods.PodStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tCONTAINER\tKIND\tIPS\tVPP INTERFACES\tVPP ROUTES")
	for _, p := range list {
		ips := make([]string, len(p.IPs))
		for i, a := range p.IPs {
			ips[i] = a.String()
		}
		ifs := make([]string, len(p.Interfaces))
		for i, l := range p.Interfaces {
			ifs[i] = fmt.Sprintf("%s (%d)", l.Name, l.SwIfIndex)
			if l.Socket != "" {
				ifs[i] += " " + l.Socket
			}
		}
		id := p.ContainerID
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, id, p.Kind,
			orDash(strings.Join(ips, ",")), orDash(strings.Join(ifs, ", ")), orDash(strings.Join(p.Routes, "; ")))
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
