package cni

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// Plugin-specific CNI error codes. The CNI spec reserves 0-99 for its own codes
// (types.ErrIncompatibleCNIVersion and friends); kube-vpp's start at 100.
const (
	// CodeIPAM: the pod's address is invalid, already taken, or the pool is exhausted.
	CodeIPAM uint = 100
	// CodeAnnotation: a pod or namespace annotation that kube-vpp reads is invalid.
	CodeAnnotation uint = 101
	// CodeVPP: VPP refused a request or could not be reached.
	CodeVPP uint = 102
	// CodePodNetwork: configuring the pod's network namespace failed.
	CodePodNetwork uint = 103
	// CodeInternal: a bug or an unexpected condition in kube-vpp itself.
	CodeInternal uint = 199
)

// Errorf builds a CNI error with the given code and a formatted message.
// Set Details on the result for text that helps debugging but is not the message.
func Errorf(code uint, format string, args ...any) *types.Error {
	return &types.Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// AsError turns any error into the CNI error that reports it. An error that is a
// *types.Error is returned as is; one that wraps a *types.Error keeps that code and
// takes the full wrapped text as its message; any other error becomes CodeInternal.
// AsError(nil) is nil.
func AsError(err error) *types.Error {
	if err == nil {
		return nil
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		if cniErr == err {
			return cniErr
		}
		return &types.Error{Code: cniErr.Code, Msg: err.Error()}
	}
	return &types.Error{Code: CodeInternal, Msg: err.Error()}
}
