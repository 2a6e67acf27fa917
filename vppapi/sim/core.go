package sim

import (
	"strings"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/binapi/vlib"
	"go.fd.io/govpp/binapi/vpe"
)

func (s *Sim) registerCore(r *registry) {
	serve(r, s.sockclntCreate, &memclnt.SockclntCreateReply{})
	serve(r, s.sockclntDelete, &memclnt.SockclntDeleteReply{})
	serve(r, s.controlPing, &memclnt.ControlPingReply{})
	serve(r, s.showVersion, &vpe.ShowVersionReply{})
	serve(r, s.cliInband, &vlib.CliInbandReply{})
}

func (s *Sim) sockclntCreate(*memclnt.SockclntCreate) []api.Message {
	s.clients++
	entries := s.table.entries()
	return []api.Message{&memclnt.SockclntCreateReply{
		Index:        s.clients,
		Count:        uint16(len(entries)),
		MessageTable: entries,
	}}
}

func (s *Sim) sockclntDelete(*memclnt.SockclntDelete) []api.Message {
	return []api.Message{&memclnt.SockclntDeleteReply{}}
}

func (s *Sim) controlPing(*memclnt.ControlPing) []api.Message {
	return []api.Message{&memclnt.ControlPingReply{VpePID: s.pid}}
}

func (s *Sim) showVersion(*vpe.ShowVersion) []api.Message {
	return []api.Message{&vpe.ShowVersionReply{
		Program:        "vpe",
		Version:        Version,
		BuildDate:      s.started.UTC().Format(time.UnixDate),
		BuildDirectory: "/simulator",
	}}
}

// cliInband answers the debug CLI. Like VPP it returns retval 0 with an
// error text for a command it doesn't know.
func (s *Sim) cliInband(m *vlib.CliInband) []api.Message {
	return []api.Message{&vlib.CliInbandReply{Reply: s.cli(strings.TrimSpace(m.Cmd))}}
}
