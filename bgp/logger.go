package bgp

import (
	"sort"
	"strings"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// gobgpLogger adapts zap to GoBGP's logger interface. GoBGP logs every
// connection attempt and configuration step at info, so its info becomes
// our debug; only session up and down stay info, as they are the changes
// an operator looks for.
type gobgpLogger struct {
	log *zap.Logger
}

var _ gobgplog.Logger = gobgpLogger{}

func newGoBGPLogger(log *zap.Logger) gobgpLogger {
	return gobgpLogger{log: log}
}

// gobgpInfoKept are the GoBGP info messages that stay at info.
func gobgpInfoKept(msg string) bool {
	switch msg {
	case "Peer Up", "Peer Down", "peer graceful restart":
		return true
	}
	return false
}

// gobgpWarnDemoted are GoBGP warnings that are routine while a peer
// reconnects: they go to debug.
func gobgpWarnDemoted(msg string) bool {
	return msg == "Closed an accepted connection"
}

func (l gobgpLogger) write(level zapcore.Level, msg string, fields gobgplog.Fields) {
	ce := l.log.Check(level, msg)
	if ce == nil {
		return
	}
	ce.Write(zapFields(fields)...)
}

// zapFields converts GoBGP's map to zap fields, sorted so that log lines
// are stable, with keys lower-cased ("Topic" becomes "topic").
func zapFields(fields gobgplog.Fields) []zap.Field {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]zap.Field, 0, len(keys))
	for _, k := range keys {
		out = append(out, zap.Any(strings.ToLower(k), fields[k]))
	}
	return out
}

// Panic keeps GoBGP's contract: it is called on broken internal
// invariants, and the code after it assumes it does not return.
func (l gobgpLogger) Panic(msg string, fields gobgplog.Fields) {
	l.write(zapcore.ErrorLevel, msg, fields)
	panic("gobgp: " + msg)
}

// Fatal logs at error and returns: a library must not exit the agent. GoBGP
// calls it only from its gRPC and config-file front ends, which we do not use.
func (l gobgpLogger) Fatal(msg string, fields gobgplog.Fields) {
	l.write(zapcore.ErrorLevel, msg, fields)
}

func (l gobgpLogger) Error(msg string, fields gobgplog.Fields) {
	l.write(zapcore.ErrorLevel, msg, fields)
}

func (l gobgpLogger) Warn(msg string, fields gobgplog.Fields) {
	if gobgpWarnDemoted(msg) {
		l.write(zapcore.DebugLevel, msg, fields)
		return
	}
	l.write(zapcore.WarnLevel, msg, fields)
}

func (l gobgpLogger) Info(msg string, fields gobgplog.Fields) {
	if gobgpInfoKept(msg) {
		l.write(zapcore.InfoLevel, msg, fields)
		return
	}
	l.write(zapcore.DebugLevel, msg, fields)
}

func (l gobgpLogger) Debug(msg string, fields gobgplog.Fields) {
	l.write(zapcore.DebugLevel, msg, fields)
}

// SetLevel is a no-op: the level belongs to the agent's zap configuration.
func (l gobgpLogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel tells GoBGP whether to build its expensive debug messages.
func (l gobgpLogger) GetLevel() gobgplog.LogLevel {
	if l.log.Core().Enabled(zapcore.DebugLevel) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
