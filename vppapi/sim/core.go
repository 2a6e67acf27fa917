package sim

import (
	"strings"

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
		BuildDate:      s.started.UTC().Format("2006-01-02T15:04:05"),
		BuildDirectory: "/simulator",
	}}
}

// cliInband answers the debug CLI. Like vl_api_cli_inband_t_handler it
// returns the output with vlib_cli_input's result: -1 with the error text
// for a command that fails or that it doesn't know.
func (s *Sim) cliInband(m *vlib.CliInband) []api.Message {
	out, rv := s.cli(strings.TrimSpace(m.Cmd))
	return []api.Message{&vlib.CliInbandReply{Retval: rv, Reply: out}}
}
