package agent

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
)

// recentEvents bounds the Events kept for kube-vppctl show events.
const recentEvents = 256

// eventSink records Kubernetes Events about objects the agent cannot program
// as asked, so that `kubectl describe` shows the reason next to the object.
// It keeps the latest ones for `kube-vppctl show events`, the only place
// they show with a manifests folder.
type eventSink struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	mu     sync.Mutex
	recent []ctl.EventInfo
}

func newEventSink(client kubernetes.Interface, node string) *eventSink {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &eventSink{
		broadcaster: b,
		recorder:    b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kube-vpp-agent", Host: node}),
	}
}

func (e *eventSink) warn(obj *corev1.ObjectReference, reason, msg string) {
	e.recorder.Event(obj, corev1.EventTypeWarning, reason, msg)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.recent) == recentEvents {
		e.recent = append(e.recent[:0], e.recent[1:]...)
	}
	object := obj.Name
	if obj.Namespace != "" {
		object = obj.Namespace + "/" + obj.Name
	}
	e.recent = append(e.recent, ctl.EventInfo{Time: time.Now(), Type: corev1.EventTypeWarning, Kind: obj.Kind,
		Object: object, Reason: reason, Message: msg})
}

func (e *eventSink) list() []ctl.EventInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ctl.EventInfo(nil), e.recent...)
}

func (e *eventSink) shutdown() { e.broadcaster.Shutdown() }
