package agent

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// eventSink records Kubernetes Events about objects the agent cannot program
// as asked, so that `kubectl describe` shows the reason next to the object.
type eventSink struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
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
}

func (e *eventSink) shutdown() { e.broadcaster.Shutdown() }
