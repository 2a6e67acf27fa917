package vppapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"

	"github.com/kube-vpp/kube-vpp/vppapi/wire"
)

// BuiltFor is the VPP release whose binapi this binary is compiled against.
const BuiltFor = "25.10-release"

// Mismatch is one message the agent uses that VPP does not offer as expected.
type Mismatch struct {
	Name    string
	WantCRC string
	// HaveCRC is what VPP advertises for the name; empty when VPP does not
	// offer the message at all (plugin not loaded, or renamed).
	HaveCRC string
}

func (m Mismatch) String() string {
	if m.HaveCRC == "" {
		return fmt.Sprintf("%s (CRC %s): not offered by VPP", m.Name, m.WantCRC)
	}
	return fmt.Sprintf("%s: VPP has CRC %s, this binary expects %s", m.Name, m.HaveCRC, m.WantCRC)
}

// IncompatibleError says VPP's message table does not match the binary. It is
// fatal: programming VPP with mismatched message layouts corrupts its state.
type IncompatibleError struct {
	Mismatches []Mismatch
	VPPVersion string // what VPP reported, if it answered show_version
}

func (e *IncompatibleError) Error() string {
	parts := make([]string, len(e.Mismatches))
	for i, m := range e.Mismatches {
		parts[i] = m.String()
	}
	running := ""
	if e.VPPVersion != "" {
		running = ", VPP reports " + e.VPPVersion
	}
	return fmt.Sprintf("VPP API incompatible (binary built for VPP %s%s): %d message(s) mismatch: %s",
		BuiltFor, running, len(e.Mismatches), strings.Join(parts, "; "))
}

// idLookup is the part of a govpp connection the check needs.
type idLookup interface {
	GetMessageID(api.Message) (uint16, error)
}

// checkMessages returns the messages of msgs that VPP's table lacks with the
// same name and CRC; table (name -> CRC as VPP advertises it) fills in what
// VPP has instead and may be nil.
func checkMessages(conn idLookup, msgs []api.Message, table map[string]string) []Mismatch {
	var out []Mismatch
	seen := map[string]bool{}
	for _, m := range msgs {
		name := m.GetMessageName()
		if seen[name] {
			continue
		}
		seen[name] = true
		if _, err := conn.GetMessageID(m); err == nil {
			continue
		}
		out = append(out, Mismatch{Name: name, WantCRC: m.GetCrcString(), HaveCRC: table[name]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readMessageTable performs the socket handshake on its own connection to
// learn every name and CRC VPP advertises. govpp keeps its table private, and
// an operator fixing a mismatch needs to see both CRCs.
func readMessageTable(ctx context.Context, socket string) (map[string]string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(3 * time.Second)
	}
	_ = c.SetDeadline(deadline)

	const sockclntCreateID = 15 // fixed in VPP; clients hard-code it
	req, err := codec.EncodeMsg(&memclnt.SockclntCreate{Name: "kube-vpp-check"}, sockclntCreateID)
	if err != nil {
		return nil, err
	}
	wire.SetRequestHeader(req, 0, 1)
	if err := wire.WriteFrame(c, req); err != nil {
		return nil, fmt.Errorf("sending sockclnt_create: %w", err)
	}
	payload, err := wire.ReadFrame(bufio.NewReader(c))
	if err != nil {
		return nil, fmt.Errorf("reading sockclnt_create_reply: %w", err)
	}
	var reply memclnt.SockclntCreateReply
	if err := codec.DecodeMsg(payload, &reply); err != nil {
		return nil, fmt.Errorf("decoding sockclnt_create_reply: %w", err)
	}
	table := make(map[string]string, len(reply.MessageTable))
	for _, e := range reply.MessageTable {
		full := strings.TrimRight(e.Name, "\x00")
		i := strings.LastIndexByte(full, '_')
		if i < 0 {
			continue
		}
		table[full[:i]] = full[i+1:]
	}
	return table, nil
}
