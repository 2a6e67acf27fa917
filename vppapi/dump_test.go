package vppapi

import (
	"errors"
	"io"
	"slices"
	"testing"
)

func TestCollect(t *testing.T) {
	feed := func(vals []int, end error) func() (int, error) {
		i := 0
		return func() (int, error) {
			if i < len(vals) {
				i++
				return vals[i-1], nil
			}
			return 0, end
		}
	}
	got, err := Collect(feed([]int{1, 2, 3}, io.EOF))
	if err != nil || !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("Collect = %v, %v; want [1 2 3], nil", got, err)
	}
	broken := errors.New("connection lost")
	if _, err := Collect(feed([]int{1}, broken)); !errors.Is(err, broken) {
		t.Errorf("Collect error = %v, want the stream's error", err)
	}
}
