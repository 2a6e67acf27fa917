package config

import (
	"fmt"
	"net/netip"
)

// Services configures the service proxy.
type Services struct {
	// Enabled runs the service proxy (services.enabled). Off, the agent
	// programs no NAT44-ED state and removes none.
	Enabled bool
	// NodePortAddresses selects the node addresses NodePorts are served on
	// (services.node-port-addresses), as kube-proxy's nodePortAddresses:
	// the node's InternalIP and ExternalIP addresses inside these CIDRs;
	// empty means all of them.
	NodePortAddresses []netip.Prefix
	// HealthCheckAddresses are where healthCheckNodePort listeners bind
	// (services.health-check-addresses); empty means every address.
	HealthCheckAddresses []netip.Addr
	// HealthzBindAddress is where kube-proxy's own /healthz and /livez are
	// served (services.healthz-bind-address, kube-proxy's
	// --healthz-bind-address); empty turns them off.
	HealthzBindAddress string
}

func (p *parser) services() Services {
	s := Services{
		Enabled:           p.boolean(KeyServicesEnabled),
		NodePortAddresses: p.optionalPrefixes(KeyServicesNodePortAddresses),
	}
	if p.str(KeyServicesHealthzBindAddress) != "" {
		s.HealthzBindAddress = p.listenAddr(KeyServicesHealthzBindAddress)
	}
	seen := map[netip.Addr]bool{}
	for _, e := range p.list(KeyServicesHealthCheckAddresses) {
		a, err := netip.ParseAddr(e)
		switch {
		case err != nil:
			p.invalid(KeyServicesHealthCheckAddresses, e, fmt.Sprintf("not an IP address: %v", err))
		case seen[a]:
			// Each is bound once per port: a second bind would fail the port.
			p.invalid(KeyServicesHealthCheckAddresses, e, "listed twice")
		default:
			seen[a] = true
			s.HealthCheckAddresses = append(s.HealthCheckAddresses, a)
		}
	}
	return s
}
