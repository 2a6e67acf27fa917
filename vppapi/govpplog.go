package vppapi

import (
	"io"

	"github.com/sirupsen/logrus"
	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/core"
	"go.uber.org/zap"
)

// RouteGovppLogs sends govpp's logrus output into log, so the agent writes one
// structured stream. govpp keeps its loggers in package variables, so only a
// main function should call this, once.
func RouteGovppLogs(log *zap.Logger) {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.DebugLevel
	l.AddHook(zapHook{log.Named("govpp")})
	core.SetLogger(l)
	socketclient.SetLogger(l)
}

type zapHook struct{ log *zap.Logger }

func (zapHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h zapHook) Fire(e *logrus.Entry) error {
	fields := make([]zap.Field, 0, len(e.Data))
	for k, v := range e.Data {
		fields = append(fields, zap.Any(k, v))
	}
	// govpp warns about every failed write while VPP is away; our own client
	// reports the outage once, so these stay at debug.
	h.log.Debug(e.Message, fields...)
	return nil
}
