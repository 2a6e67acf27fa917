package bgp

import (
	"errors"
	"testing"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestGoBGPLoggerLevels(t *testing.T) {
	tests := []struct {
		name string
		log  func(gobgplog.Logger)
		want zapcore.Level
	}{
		{"session up stays info", func(l gobgplog.Logger) { l.Info("Peer Up", nil) }, zapcore.InfoLevel},
		{"session down stays info", func(l gobgplog.Logger) { l.Info("Peer Down", nil) }, zapcore.InfoLevel},
		{"graceful restart stays info", func(l gobgplog.Logger) { l.Info("peer graceful restart", nil) }, zapcore.InfoLevel},
		{"other info becomes debug", func(l gobgplog.Logger) { l.Info("Add a peer configuration", nil) }, zapcore.DebugLevel},
		{"debug", func(l gobgplog.Logger) { l.Debug("try to connect", nil) }, zapcore.DebugLevel},
		{"warn", func(l gobgplog.Logger) { l.Warn("hold timer expired", nil) }, zapcore.WarnLevel},
		{"routine warn becomes debug", func(l gobgplog.Logger) { l.Warn("Closed an accepted connection", nil) }, zapcore.DebugLevel},
		{"error", func(l gobgplog.Logger) { l.Error("failed to set md5", nil) }, zapcore.ErrorLevel},
		{"fatal logs and returns", func(l gobgplog.Logger) { l.Fatal("unknown msg type", nil) }, zapcore.ErrorLevel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			tc.log(newGoBGPLogger(zap.New(core)))
			if logs.Len() != 1 {
				t.Fatalf("%d entries, want 1", logs.Len())
			}
			if got := logs.All()[0].Level; got != tc.want {
				t.Errorf("level = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestGoBGPLoggerFields(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := newGoBGPLogger(zap.New(core))
	l.Info("Peer Down", gobgplog.Fields{"Topic": "Peer", "Key": "127.0.0.2", "Err": errors.New("eof")})
	got := logs.All()[0].ContextMap()
	want := map[string]any{"topic": "Peer", "key": "127.0.0.2", "err": "eof"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("field %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func TestGoBGPLoggerGetLevel(t *testing.T) {
	for _, tc := range []struct {
		zapLevel zapcore.Level
		want     gobgplog.LogLevel
	}{
		{zapcore.DebugLevel, gobgplog.DebugLevel},
		{zapcore.InfoLevel, gobgplog.InfoLevel},
		{zapcore.WarnLevel, gobgplog.InfoLevel}, // Peer Up/Down must still reach us
	} {
		core, _ := observer.New(tc.zapLevel)
		if got := newGoBGPLogger(zap.New(core)).GetLevel(); got != tc.want {
			t.Errorf("zap %s: GetLevel = %d, want %d", tc.zapLevel, got, tc.want)
		}
	}
}

func TestGoBGPLoggerPanicPanics(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	defer func() {
		if recover() == nil {
			t.Error("Panic returned; GoBGP's code after it assumes it does not")
		}
		if logs.Len() != 1 {
			t.Errorf("%d entries logged before the panic, want 1", logs.Len())
		}
	}()
	newGoBGPLogger(zap.New(core)).Panic("code logic bug", nil)
}
