package config

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name  string
		log   Log
		check func(t *testing.T, out string)
	}{
		{
			name: "json at warn drops info",
			log:  Log{Level: zapcore.WarnLevel, Format: LogJSON},
			check: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 1 {
					t.Fatalf("want only the warning, got %q", out)
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
					t.Fatalf("not JSON: %q: %v", lines[0], err)
				}
				if rec["level"] != "warn" || rec["msg"] != "second" || rec["node"] != "n1" {
					t.Errorf("unexpected record %v", rec)
				}
				if _, ok := rec["ts"]; !ok {
					t.Errorf("record %v has no timestamp", rec)
				}
			},
		},
		{
			name: "console at debug keeps everything, timestamped",
			log:  Log{Level: zapcore.DebugLevel, Format: LogConsole},
			check: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSpace(out), "\n")
				if len(lines) != 3 {
					t.Fatalf("want 3 lines, got %q", out)
				}
				ts := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}`)
				for i, want := range []string{"DEBUG", "INFO", "WARN"} {
					if !ts.MatchString(lines[i]) || !strings.Contains(lines[i], want) {
						t.Errorf("line %d %q: want a timestamp and %s", i, lines[i], want)
					}
				}
				if !strings.Contains(lines[2], `"node": "n1"`) {
					t.Errorf("line %q lacks the node field", lines[2])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := tt.log.newLogger(zapcore.AddSync(&buf))
			if err != nil {
				t.Fatalf("newLogger: %v", err)
			}
			log.Debug("zeroth")
			log.Info("first")
			log.Warn("second", zap.String("node", "n1"))
			_ = log.Sync()
			tt.check(t, buf.String())
		})
	}
}

func TestNewLoggerRefusesUnvalidatedConfig(t *testing.T) {
	tests := []struct {
		name string
		log  Log
		key  string
	}{
		{"zero format", Log{Level: zapcore.InfoLevel}, KeyLogFormat},
		{"fatal level", Log{Level: zapcore.FatalLevel, Format: LogJSON}, KeyLogLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Log: tt.log}
			if _, err := c.NewLogger(); findInvalid(err, tt.key) == nil {
				t.Errorf("NewLogger() error = %v, want an invalid %s", err, tt.key)
			}
		})
	}
}
