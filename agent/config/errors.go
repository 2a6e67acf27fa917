package config

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
)

// InvalidError reports a setting whose value cannot be used.
type InvalidError struct {
	Key    string // config key, e.g. "network.service-cidrs"
	Value  string // the value as given
	Reason string // why it is refused
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid value %q for %s: %s", e.Value, e.Key, e.Reason)
}

// FileError reports a config file that cannot be read or parsed, or that
// holds keys the agent does not know.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("config file %s: %v", e.Path, e.Err) }

func (e *FileError) Unwrap() error { return e.Err }

// flagError marks a command line the flag parser refused.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }

func (e *flagError) Unwrap() error { return e.err }

// Exit codes returned by ExitCode.
const (
	ExitOK      = 0 // success, or --help
	ExitFailure = 1 // runtime failure, e.g. an incompatible VPP
	ExitInvalid = 2 // invalid configuration or command line
)

// ExitCode maps an error to the process exit status: 0 for nil and
// pflag.ErrHelp, 2 for an invalid configuration (bad value, bad flag, bad
// config file), 1 for anything else.
func ExitCode(err error) int {
	var (
		invalid *InvalidError
		file    *FileError
		flag    *flagError
	)
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return ExitOK
	case errors.As(err, &invalid), errors.As(err, &file), errors.As(err, &flag):
		return ExitInvalid
	default:
		return ExitFailure
	}
}
