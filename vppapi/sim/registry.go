package sim

import (
	"fmt"
	"reflect"
	"strconv"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"

	"github.com/kube-vpp/kube-vpp/vppapi/wire"
)

// handler serves one request message. It runs with Sim.mu held and returns
// the messages to send back in order (a reply, or details for a dump).
type handler struct {
	proto api.Message
	fn    func(api.Message) []api.Message
}

func (h *handler) newRequest() api.Message {
	return reflect.New(reflect.TypeOf(h.proto).Elem()).Interface().(api.Message)
}

// msgTable maps message IDs to messages and back, as VPP's table does.
type msgTable struct {
	byID   map[uint16]api.Message
	byName map[string]uint16 // bare message name -> ID
	crc    map[uint16]string // the CRC advertised for an ID
}

func (t *msgTable) id(msg api.Message) (uint16, bool) {
	id, ok := t.byName[msg.GetMessageName()]
	return id, ok
}

type regEntry struct {
	msg api.Message
	fn  func(api.Message) []api.Message
}

// registry collects served messages before the table is frozen.
type registry struct {
	entries []regEntry
	seen    map[string]bool
}

func newRegistry() *registry { return &registry{seen: map[string]bool{}} }

// serve registers fn for requests of req's type; replies lists every message
// fn may answer with, so that they get IDs in the table.
func serve[Req api.Message](r *registry, fn func(Req) []api.Message, replies ...api.Message) {
	var zero Req
	proto := reflect.New(reflect.TypeOf(zero).Elem()).Interface().(api.Message)
	r.add(proto, func(m api.Message) []api.Message { return fn(m.(Req)) })
	for _, rep := range replies {
		r.add(rep, nil)
	}
}

func (r *registry) add(msg api.Message, fn func(api.Message) []api.Message) {
	name := msg.GetMessageName()
	if r.seen[name] {
		if fn != nil {
			for i := range r.entries {
				if r.entries[i].msg.GetMessageName() == name {
					r.entries[i].fn = fn
				}
			}
		}
		return
	}
	r.seen[name] = true
	r.entries = append(r.entries, regEntry{msg: msg, fn: fn})
}

// memclntIDs are the IDs VPP gives its memclnt messages: they come first in
// VPP's table, and clients hard-code sockclnt_create as 15.
var memclntIDs = map[string]uint16{
	"memclnt_create": 1, "memclnt_create_reply": 2, "memclnt_delete": 3, "memclnt_delete_reply": 4,
	"rx_thread_exit": 5, "memclnt_rx_thread_suspend": 6, "memclnt_read_timeout": 7,
	"rpc_call": 8, "rpc_call_reply": 9, "get_first_msg_id": 10, "get_first_msg_id_reply": 11,
	"api_versions": 12, "api_versions_reply": 13, "trace_plugin_msg_ids": 14,
	"sockclnt_create": 15, "sockclnt_create_reply": 16, "sockclnt_delete": 17, "sockclnt_delete_reply": 18,
	"sock_init_shm": 19, "sock_init_shm_reply": 20, "memclnt_keepalive": 21, "memclnt_keepalive_reply": 22,
	"control_ping": 23, "control_ping_reply": 24, "memclnt_create_v2": 25, "memclnt_create_v2_reply": 26,
	"get_api_json": 27, "get_api_json_reply": 28,
}

const firstPluginID = 29

func (r *registry) build(corruptCRC []string) (*msgTable, map[uint16]*handler, error) {
	t := &msgTable{byID: map[uint16]api.Message{}, byName: map[string]uint16{}, crc: map[uint16]string{}}
	handlers := map[uint16]*handler{}
	next := uint16(firstPluginID)
	for _, e := range r.entries {
		name := e.msg.GetMessageName()
		id, fixed := memclntIDs[name]
		if !fixed {
			id = next
			next++
		}
		t.byID[id] = e.msg
		t.byName[name] = id
		t.crc[id] = e.msg.GetCrcString()
		if e.fn != nil {
			handlers[id] = &handler{proto: e.msg, fn: e.fn}
		}
	}
	for _, name := range corruptCRC {
		id, ok := t.byName[name]
		if !ok {
			return nil, nil, fmt.Errorf("cannot corrupt the CRC of %q: the simulator does not serve it", name)
		}
		crc, err := strconv.ParseUint(t.crc[id], 16, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("CRC of %q: %w", name, err)
		}
		t.crc[id] = fmt.Sprintf("%08x", uint32(crc)^0x5a5a5a5a)
	}
	return t, handlers, nil
}

// entries renders the table as sockclnt_create_reply carries it.
func (t *msgTable) entries() []memclnt.MessageTableEntry {
	out := make([]memclnt.MessageTableEntry, 0, len(t.byID))
	for id := uint16(0); len(out) < len(t.byID); id++ {
		msg, ok := t.byID[id]
		if !ok {
			continue
		}
		out = append(out, memclnt.MessageTableEntry{Index: id, Name: msg.GetMessageName() + "_" + t.crc[id]})
	}
	return out
}

func isWrite(name string) bool { return !wire.ReadOnly(name) }
