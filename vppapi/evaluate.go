package vppapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Probe is a packet to evaluate: its header as it arrives on an interface.
type Probe struct {
	Ingress          uint32
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16
}

// Evaluation is what VPP's graph does with a Probe. The simulator answers
// it as JSON to the CLI command EvaluateCommand; these are its fields.
type Evaluation struct {
	Verdict      string                  `json:"verdict"` // forwarded, dropped, rejected, local
	Src          netip.AddrPort          `json:"src"`     // as the packet leaves
	Dst          netip.AddrPort          `json:"dst"`
	Egress       uint32                  `json:"egress"`
	EgressName   string                  `json:"egressName"`
	NextHop      netip.Addr              `json:"nextHop"`
	Reason       string                  `json:"reason"`
	Steps        []EvaluationStep        `json:"steps"`
	Translations []EvaluationTranslation `json:"translations"`
	// ACL lists every ACL node that decided on the packet, in order.
	ACL []EvaluationACL `json:"acl"`
}

// EvaluationACL is one ACL node's decision: the rule that matched (ACL
// index ~0 and rule -1 when none did, which denies), or the session that
// passed the packet with the rule that created it.
type EvaluationACL struct {
	Node      string `json:"node"`
	SwIfIndex uint32 `json:"swIfIndex"`
	ACLIndex  uint32 `json:"aclIndex"`
	Tag       string `json:"tag"`
	Rule      int    `json:"rule"`
	Action    string `json:"action"`
	Session   bool   `json:"session"`
}

// EvaluationStep is one graph node.
type EvaluationStep struct {
	Node   string `json:"node"`
	Detail string `json:"detail"`
}

// EvaluationTranslation is one NAT rewrite.
type EvaluationTranslation struct {
	Node string         `json:"node"`
	Kind string         `json:"kind"` // dnat or snat
	From netip.AddrPort `json:"from"`
	To   netip.AddrPort `json:"to"`
}

// EvaluateCommand is the simulator's CLI command that evaluates a packet:
// "kube-vpp-sim evaluate <ingress> <proto> <src ip> <src port> <dst ip> <dst port>".
// VPP itself has no such command; there, trace with a packet generator
// stream and `trace add pg-input`.
const EvaluateCommand = "kube-vpp-sim evaluate"

// ErrCannotEvaluate is returned by Evaluate when VPP is not the simulator.
var ErrCannotEvaluate = errors.New("this VPP cannot evaluate packets (only the kube-vpp simulator can); " +
	"on VPP, trace with a packet-generator stream and `vppctl trace add pg-input`")

// FormatProbe is the command line that evaluates p.
func FormatProbe(p Probe) string {
	return fmt.Sprintf("%s %d %d %s %d %s %d", EvaluateCommand, p.Ingress, p.Protocol, p.Src, p.SrcPort, p.Dst, p.DstPort)
}

// Evaluate asks VPP (the simulator) what it does with p.
func (c *Client) Evaluate(ctx context.Context, p Probe) (Evaluation, error) {
	out, err := c.CLI(ctx, FormatProbe(p))
	if err != nil {
		if strings.Contains(err.Error(), "unknown input") {
			return Evaluation{}, ErrCannotEvaluate
		}
		return Evaluation{}, err
	}
	var ev Evaluation
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		return Evaluation{}, fmt.Errorf("evaluating %s: unreadable answer %q: %w", p.Dst, out, err)
	}
	return ev, nil
}
