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
}

func (p *parser) services() Services {
	s := Services{
		Enabled:           p.boolean(KeyServicesEnabled),
		NodePortAddresses: p.optionalPrefixes(KeyServicesNodePortAddresses),
	}
	for _, e := range p.list(KeyServicesHealthCheckAddresses) {
		a, err := netip.ParseAddr(e)
		if err != nil {
			p.invalid(KeyServicesHealthCheckAddresses, e, fmt.Sprintf("not an IP address: %v", err))
			continue
		}
		s.HealthCheckAddresses = append(s.HealthCheckAddresses, a)
	}
	return s
}
