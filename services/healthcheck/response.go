package healthcheck

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// response is kube-proxy's health check body (pkg/proxy/healthcheck/service_health.go,
// hcHandler.ServeHTTP); the field names and order are what load balancers and operators
// already parse.
type response struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints int `json:"localEndpoints"`
	// ServiceProxyHealthy is always true here: kube-proxy also fails the check when its
	// own healthz is failing, but this server lives inside the agent and is not told
	// about the agent's health, so the endpoint count alone decides.
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

// serveHTTP answers any method and path, as kube-proxy does: load balancers are
// configured with various paths and only look at the status code (and, for weighted
// balancing such as GCP's WEIGHTED_MAGLEV, at X-Load-Balancing-Endpoint-Weight).
func (ps *portServer) serveHTTP(w http.ResponseWriter, _ *http.Request) {
	svc := *ps.svc.Load()

	var body response
	body.Service.Namespace = svc.Namespace
	body.Service.Name = svc.Name
	body.LocalEndpoints = svc.LocalEndpoints
	body.ServiceProxyHealthy = true
	// Tab indentation and no trailing newline give the same bytes kube-proxy writes.
	out, err := json.MarshalIndent(body, "", "\t")
	if err != nil {
		// Only strings and ints: cannot fail, but never answer 200 on a broken body.
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(svc.LocalEndpoints))
	status := http.StatusOK
	if svc.LocalEndpoints == 0 {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_, _ = w.Write(out) // the prober went away; nothing to do
}
