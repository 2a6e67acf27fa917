package ctl

import "time"

// EventInfo is a Kubernetes Event the agent recorded.
type EventInfo struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // Warning
	Kind    string    `json:"kind"` // of the object: Service, Pod, Node
	Object  string    `json:"object"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}
