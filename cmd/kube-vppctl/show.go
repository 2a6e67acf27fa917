package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/services"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

func printServices(w io.Writer, list []services.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tKIND\tFRONTEND\tVPP MAPPING\tBACKENDS")
	for _, s := range list {
		for _, f := range s.Frontends {
			back := strings.Join(addrPorts(f), ",")
			if len(f.SourceRanges) > 0 && len(f.Backends) > 0 {
				back += " (from " + prefixes(f.SourceRanges) + " only)"
			}
			if f.Note != "" {
				if back != "" {
					back += " "
				}
				back += "(" + f.Note + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\n", s.Service, f.Kind, f.Address, f.Protocol, mappingOf(s.Mappings, f), back)
		}
		if s.HealthCheck != nil {
			fmt.Fprintf(tw, "%s\thealth check\t:%d\t-\t%d local endpoint(s)\n", s.Service, s.HealthCheck.Port, s.HealthCheck.LocalEndpoints)
		}
		for _, p := range s.Problems {
			fmt.Fprintf(tw, "%s\tproblem\t\t\t%s\n", s.Service, p)
		}
	}
	_ = tw.Flush()
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// mappingOf describes the VPP mapping serving a frontend: static or
// load-balanced with its locals, affinity and twice-NAT flags.
func mappingOf(ms []nat44ed.Mapping, f services.Frontend) string {
	for _, m := range ms {
		if m.External != f.Address || m.Protocol != f.Protocol {
			continue
		}
		d := "static"
		if len(m.Locals) > 1 {
			d = fmt.Sprintf("lb/%d", len(m.Locals))
		}
		if m.Affinity > 0 {
			d += fmt.Sprintf(" affinity %ds", m.Affinity)
		}
		switch {
		case m.TwiceNAT:
			d += " twice-nat"
		case m.SelfTwiceNAT:
			d += " self-twice-nat"
		}
		return d
	}
	if len(f.Backends) > 0 {
		return "NOT PROGRAMMED"
	}
	return "-"
}

func printPolicies(w io.Writer, list []ctl.PodPolicy) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tINGRESS (output)\tEGRESS (input)\tSERVICE FIREWALL (input, first)\tPOLICIES")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Pod, table(p.Ingress, p.IngressACL), table(p.Egress, p.EgressACL),
			table(p.Firewall, p.FirewallACL), strings.Join(p.Policies, ","))
	}
	_ = tw.Flush()
}

func table(tag string, index *uint32) string {
	switch {
	case tag == "":
		return "-"
	case index == nil:
		return tag
	}
	return fmt.Sprintf("acl %d %s", *index, tag)
}

func addrPorts(f services.Frontend) []string {
	out := make([]string, len(f.Backends))
	for i, b := range f.Backends {
		out[i] = b.String()
	}
	return out
}
