package vppapi

import (
	"errors"
	"io"
)

// Collect reads a dump stream (a generated client's Recv) to its end.
func Collect[T any](recv func() (T, error)) ([]T, error) {
	var out []T
	for {
		v, err := recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
}
