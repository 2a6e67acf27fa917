package behaviour

// The cluster of the service behaviour tests. The agent under test plays
// node-a. Addresses:
//
//	node-a  InternalIP 192.168.10.11, ExternalIP 203.0.113.50, pods 10.244.0.0/24
//	node-b  InternalIP 192.168.10.12,                         pods 10.244.1.0/24
//	default/client  10.244.0.10 (node-a)
//	default/web-a   10.244.0.11 (node-a)    default/web-a2 10.244.0.12 (node-a)
//	default/web-b   10.244.1.11 (node-b)
//
// External clients come from 198.51.100.0/24 through node-a's uplink.
const clusterYAML = `
apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDR: 10.244.0.0/24, podCIDRs: [10.244.0.0/24]}
status:
  addresses:
  - {type: InternalIP, address: 192.168.10.11}
  - {type: ExternalIP, address: 203.0.113.50}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
spec: {podCIDR: 10.244.1.0/24, podCIDRs: [10.244.1.0/24]}
status:
  addresses:
  - {type: InternalIP, address: 192.168.10.12}
---
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec: {nodeName: node-a, containers: [{name: c, image: busybox}]}
status: {phase: Running, podIP: 10.244.0.10, podIPs: [{ip: 10.244.0.10}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, namespace: default, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: c, image: nginx}]}
status: {phase: Running, podIP: 10.244.0.11, podIPs: [{ip: 10.244.0.11}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a2, namespace: default, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: c, image: nginx}]}
status: {phase: Running, podIP: 10.244.0.12, podIPs: [{ip: 10.244.0.12}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, namespace: default, labels: {app: web}}
spec: {nodeName: node-b, containers: [{name: c, image: nginx}]}
status: {phase: Running, podIP: 10.244.1.11, podIPs: [{ip: 10.244.1.11}]}
`

// servicesYAML has one service per behaviour; the %d are the health check
// ports of local and of localhere.
const servicesYAML = `
# web: ClusterIP, two ports (80 -> named port http = 8080, 443 -> 8443), three endpoints.
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20]
  selector: {app: web}
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: http}
  - {name: https, protocol: TCP, port: 443, targetPort: 8443}
---
# dns: the same port number over UDP and TCP.
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports:
  - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
  - {name: dns-tcp, protocol: TCP, port: 53, targetPort: 5353}
---
# np: NodePort, externalTrafficPolicy Cluster.
apiVersion: v1
kind: Service
metadata: {name: np, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.21
  clusterIPs: [10.96.0.21]
  externalTrafficPolicy: Cluster
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
---
# lb: LoadBalancer with an ingress IP.
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.22
  clusterIPs: [10.96.0.22]
  externalTrafficPolicy: Cluster
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30081}
status:
  loadBalancer:
    ingress: [{ip: 198.18.0.10}]
---
# lbfw: LoadBalancer admitting only 198.51.100.0/25 and the client pod.
apiVersion: v1
kind: Service
metadata: {name: lbfw, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.23
  clusterIPs: [10.96.0.23]
  externalTrafficPolicy: Cluster
  loadBalancerSourceRanges: [198.51.100.0/25, 10.244.0.10/32]
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30083}
status:
  loadBalancer:
    ingress: [{ip: 198.18.0.11}]
---
# ext: one external IP inside the allowed 192.0.2.0/24, one outside it.
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.23
  clusterIPs: [10.96.0.23]
  externalIPs: [192.0.2.10, 198.51.100.99]
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# sticky: ClientIP affinity for 600 s over three endpoints.
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.30
  clusterIPs: [10.96.0.30]
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# local: externalTrafficPolicy Local, its only endpoint on node-b.
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.40
  clusterIPs: [10.96.0.40]
  externalTrafficPolicy: Local
  healthCheckNodePort: %d
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30090}
status:
  loadBalancer:
    ingress: [{ip: 198.18.0.12}]
---
# localhere: externalTrafficPolicy Local with an endpoint on node-a and one on node-b.
apiVersion: v1
kind: Service
metadata: {name: localhere, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.41
  clusterIPs: [10.96.0.41]
  externalTrafficPolicy: Local
  healthCheckNodePort: %d
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30091}
---
# itp: internalTrafficPolicy Local, endpoints on node-a and node-b.
apiVersion: v1
kind: Service
metadata: {name: itp, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.42
  clusterIPs: [10.96.0.42]
  internalTrafficPolicy: Local
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# itpaway: internalTrafficPolicy Local, its only endpoint on node-b.
apiVersion: v1
kind: Service
metadata: {name: itpaway, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.43
  clusterIPs: [10.96.0.43]
  internalTrafficPolicy: Local
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# empty: no endpoints.
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.50
  clusterIPs: [10.96.0.50]
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# self: web-a is its only endpoint (hairpin).
apiVersion: v1
kind: Service
metadata: {name: self, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.60
  clusterIPs: [10.96.0.60]
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# term: only a terminating (still serving) endpoint.
apiVersion: v1
kind: Service
metadata: {name: term, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.70
  clusterIPs: [10.96.0.70]
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# mixed: a ready endpoint and a terminating one.
apiVersion: v1
kind: Service
metadata: {name: mixed, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.71
  clusterIPs: [10.96.0.71]
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
# sctp: a protocol NAT44-ED does not serve.
apiVersion: v1
kind: Service
metadata: {name: sctp, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.80
  clusterIPs: [10.96.0.80]
  ports:
  - {name: s, protocol: SCTP, port: 9000, targetPort: 9000}
---
# headless: no cluster IP, left alone.
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  clusterIPs: [None]
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
`

// slice is an EndpointSlice of service with IPv4 endpoints.
func slice(service, name string, ports string, endpoints ...string) string {
	s := "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + name +
		"\n  namespace: default\n  labels: {kubernetes.io/service-name: " + service + "}\naddressType: IPv4\nports: " + ports +
		"\nendpoints:"
	if len(endpoints) == 0 {
		return s + " []\n---\n"
	}
	for _, e := range endpoints {
		s += "\n- " + e
	}
	return s + "\n---\n"
}

func ep(ip, node string) string {
	return "{addresses: [" + ip + "], nodeName: " + node + ", conditions: {ready: true, serving: true, terminating: false}}"
}

func terminating(ip, node string) string {
	return "{addresses: [" + ip + "], nodeName: " + node + ", conditions: {ready: false, serving: true, terminating: true}}"
}

const port8080 = "[{name: http, protocol: TCP, port: 8080}]"

// webSlices are web's endpoints; withA2 includes web-a2.
func webSlices(withA2 bool) string {
	eps := []string{ep("10.244.0.11", "node-a"), ep("10.244.1.11", "node-b")}
	if withA2 {
		eps = append(eps, ep("10.244.0.12", "node-a"))
	}
	return slice("web", "web-http", port8080, eps...) +
		slice("web", "web-https", "[{name: https, protocol: TCP, port: 8443}]", eps...)
}

func otherSlices() string {
	all := []string{ep("10.244.0.11", "node-a"), ep("10.244.0.12", "node-a"), ep("10.244.1.11", "node-b")}
	return slice("dns", "dns-1", "[{name: dns, protocol: UDP, port: 5353}, {name: dns-tcp, protocol: TCP, port: 5353}]", ep("10.244.0.11", "node-a")) +
		slice("np", "np-1", port8080, ep("10.244.0.11", "node-a"), ep("10.244.1.11", "node-b")) +
		slice("lb", "lb-1", port8080, ep("10.244.0.11", "node-a")) +
		slice("lbfw", "lbfw-1", port8080, ep("10.244.0.11", "node-a")) +
		slice("ext", "ext-1", port8080, ep("10.244.0.11", "node-a")) +
		slice("sticky", "sticky-1", port8080, all...) +
		slice("local", "local-1", port8080, ep("10.244.1.11", "node-b")) +
		slice("localhere", "localhere-1", port8080, ep("10.244.0.11", "node-a"), ep("10.244.1.11", "node-b")) +
		slice("itp", "itp-1", port8080, ep("10.244.0.11", "node-a"), ep("10.244.1.11", "node-b")) +
		slice("itpaway", "itpaway-1", port8080, ep("10.244.1.11", "node-b")) +
		slice("empty", "empty-1", port8080) +
		slice("self", "self-1", port8080, ep("10.244.0.11", "node-a")) +
		slice("term", "term-1", port8080, terminating("10.244.0.12", "node-a")) +
		slice("mixed", "mixed-1", port8080, ep("10.244.0.11", "node-a"), terminating("10.244.0.12", "node-a")) +
		slice("sctp", "sctp-1", "[{name: s, protocol: SCTP, port: 9000}]", ep("10.244.0.11", "node-a"))
}
