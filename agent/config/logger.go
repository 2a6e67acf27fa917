package config

import (
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger returns a logger writing to stderr at the configured level:
// timestamped human-readable lines for the console format, zap's production
// JSON encoding for json.
func (c *Config) NewLogger() (*zap.Logger, error) {
	return c.Log.newLogger(zapcore.Lock(os.Stderr))
}

func (l Log) newLogger(out zapcore.WriteSyncer) (*zap.Logger, error) {
	var enc zapcore.Encoder
	switch l.Format {
	case LogConsole:
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	case LogJSON:
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	default:
		return nil, &InvalidError{Key: KeyLogFormat, Value: string(l.Format), Reason: "must be console or json"}
	}
	if l.Level < zapcore.DebugLevel || l.Level > zapcore.ErrorLevel {
		return nil, &InvalidError{Key: KeyLogLevel, Value: l.Level.String(), Reason: "must be one of debug, info, warn, error"}
	}
	core := zapcore.NewCore(enc, out, l.Level)
	// Errors here are operational (a VPP refusal, a bad manifest) and name
	// their object; a stack trace would only bury that, so traces are kept
	// for programming errors (DPanic and above).
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.DPanicLevel), zap.ErrorOutput(out)), nil
}
