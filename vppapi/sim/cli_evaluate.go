package sim

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kube-vpp/kube-vpp/vppapi"
)

// cliEvaluate runs vppapi.EvaluateCommand: it evaluates one packet as
// Evaluate does (sessions it creates stay) and answers JSON.
func (s *Sim) cliEvaluate(args string) (string, error) {
	f := strings.Fields(args)
	if len(f) != 6 {
		return "", fmt.Errorf("usage: %s <ingress> <proto> <src> <sport> <dst> <dport>", vppapi.EvaluateCommand)
	}
	num := func(s string, bits int) (uint64, error) { return strconv.ParseUint(s, 10, bits) }
	in, err1 := num(f[0], 32)
	proto, err2 := num(f[1], 8)
	sport, err3 := num(f[3], 16)
	dport, err4 := num(f[5], 16)
	src, err5 := netip.ParseAddr(f[2])
	dst, err6 := netip.ParseAddr(f[4])
	for _, err := range []error{err1, err2, err3, err4, err5, err6} {
		if err != nil {
			return "", fmt.Errorf("%s: %v", vppapi.EvaluateCommand, err)
		}
	}
	res, err := s.st.evaluate(Packet{Ingress: uint32(in), Src: src, Dst: dst, Protocol: uint8(proto),
		SrcPort: uint16(sport), DstPort: uint16(dport)})
	if err != nil {
		return "", err
	}
	ev := vppapi.Evaluation{
		Verdict: string(res.Verdict), Egress: res.Egress, EgressName: res.EgressName, NextHop: res.NextHop,
		Reason: res.Reason,
		Src:    netip.AddrPortFrom(res.Packet.Src, res.Packet.SrcPort),
		Dst:    netip.AddrPortFrom(res.Packet.Dst, res.Packet.DstPort),
	}
	for _, st := range res.Steps {
		ev.Steps = append(ev.Steps, vppapi.EvaluationStep{Node: st.Node, Detail: st.Detail})
	}
	for _, t := range res.Translations {
		ev.Translations = append(ev.Translations, vppapi.EvaluationTranslation{Node: t.Node, Kind: t.Kind, From: t.From, To: t.To})
	}
	for _, a := range res.ACL {
		ev.ACL = append(ev.ACL, vppapi.EvaluationACL{Node: a.Node, SwIfIndex: a.SwIfIndex, ACLIndex: a.ACLIndex,
			Tag: a.Tag, Rule: a.Rule, Action: a.Action, Session: a.Session})
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}
