package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/offline"
)

// trace runs `kube-vppctl trace`, against the agent at c or, with
// --manifests, against an agent and a simulator started in this process.
func trace(ctx context.Context, c *ctl.Client, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "namespace/pod of this node, or an IP address (outside clients come in through the uplink)")
	to := fs.String("to", "", "destination ip:port/tcp or ip:port/udp")
	count := fs.Int("count", 1, "connections to trace, each from its own source port")
	output := fs.String("o", "text", "output: text or json")
	verbose := fs.Bool("v", false, "print every graph node of each packet")
	dir := fs.String("manifests", "", "trace offline: run this folder's agent and a simulated VPP in this process")
	node := fs.String("node", "", "with --manifests: the node to play (default: the only or first Node)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kube-vppctl trace: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	dst, proto, err := ctl.ParseDestination(*to)
	if err != nil {
		fmt.Fprintln(stderr, "kube-vppctl trace: --to", err)
		return 2
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "kube-vppctl trace: -o %q: want text or json\n", *output)
		return 2
	}
	req := ctl.TraceRequest{From: *from, To: dst, Protocol: proto, Count: *count}
	if err := req.Validate(); err != nil {
		fmt.Fprintln(stderr, "kube-vppctl trace:", err)
		return 2
	}
	if *node != "" && *dir == "" {
		fmt.Fprintln(stderr, "kube-vppctl trace: --node needs --manifests")
		return 2
	}
	var rep ctl.TraceReply
	do := func(ctx context.Context, c *ctl.Client) error {
		var err error
		rep, err = c.Trace(ctx, req)
		return err
	}
	if *dir != "" {
		n, err := offline.PickNode(*dir, *node)
		if err == nil {
			err = offline.Run(ctx, *dir, n, offline.Options{}, do)
		}
		if err != nil {
			fmt.Fprintln(stderr, "kube-vppctl trace:", err)
			return 1
		}
	} else if err := do(ctx, c); err != nil {
		fmt.Fprintln(stderr, "kube-vppctl trace:", err)
		return 1
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return 0
	}
	printTrace(stdout, rep, *verbose)
	return 0
}

func printTrace(w io.Writer, rep ctl.TraceReply, verbose bool) {
	fmt.Fprintf(w, "trace %s -> %s/%s, %d connection(s)\n", rep.From, rep.To, rep.Protocol, len(rep.Packets))
	verdicts := map[string]int{}
	backends := map[string]int{}
	for _, p := range rep.Packets {
		verdicts[p.Verdict]++
		for _, t := range p.Translations {
			if t.Kind == "dnat" {
				backends[t.To]++
			}
		}
	}
	if len(rep.Packets) > 10 && !verbose {
		fmt.Fprintf(w, "  first: %s\n", rep.Packets[0])
		fmt.Fprintf(w, "  verdicts: %s\n", tally(verdicts))
		if len(backends) > 0 {
			fmt.Fprintf(w, "  backends: %s\n", tally(backends))
		}
		return
	}
	for _, p := range rep.Packets {
		fmt.Fprintf(w, "  %s\n", p)
		if verbose {
			for _, s := range p.Steps {
				fmt.Fprintf(w, "      %-28s %s\n", s.Node, s.Detail)
			}
			for _, d := range p.Policy {
				how := d.Action
				if d.Session {
					how += " (session)"
				}
				fmt.Fprintf(w, "      policy: %s on sw_if_index %d: %s by %s\n", d.Node, d.SwIfIndex, how, d.Why)
			}
		}
	}
	if len(rep.Packets) > 1 && len(backends) > 0 {
		fmt.Fprintf(w, "  backends: %s\n", tally(backends))
	}
}

// tally prints counts, largest first.
func tally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
