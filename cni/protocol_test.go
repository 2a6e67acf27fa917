package cni

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseArgs(t *testing.T) {
	// Pair syntax follows libcni's types.LoadArgs: split on ';', each pair exactly one '='.
	tests := []struct {
		args    string
		want    map[string]string
		wantErr bool
	}{
		{args: "", want: map[string]string{}},
		{
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
			want: map[string]string{"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web-0",
				"K8S_POD_INFRA_CONTAINER_ID": "abc", "K8S_POD_UID": "u-1"},
		},
		{args: "A=", want: map[string]string{"A": ""}},
		{args: "A=1;A=2", want: map[string]string{"A": "2"}},
		{args: "A", wantErr: true},
		{args: "A=1;", wantErr: true},
		{args: ";A=1", wantErr: true},
		{args: "=1", wantErr: true},
		{args: "A=1=2", wantErr: true},
		{args: "A=1;;B=2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			got, err := ParseArgs(tt.args)
			if tt.wantErr {
				var cniErr *types.Error
				if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidEnvironmentVariables {
					t.Fatalf("ParseArgs(%q) err = %v, want CNI error code 4", tt.args, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tt.args, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("ParseArgs(%q) = %v, want %v", tt.args, got, tt.want)
			}
		})
	}
}

func TestRequestPod(t *testing.T) {
	tests := []struct {
		name      string
		command   string
		args      string
		want      PodRef
		wantCode  uint
		wantInMsg string
	}{
		{name: "ADD with both", command: CommandAdd, args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p", want: PodRef{"ns", "p"}},
		{name: "ADD without name", command: CommandAdd, args: "K8S_POD_NAMESPACE=ns", wantCode: 4, wantInMsg: ArgPodName},
		{name: "ADD without namespace", command: CommandAdd, args: "K8S_POD_NAME=p", wantCode: 4, wantInMsg: ArgPodNamespace},
		{name: "ADD without args", command: CommandAdd, args: "", wantCode: 4, wantInMsg: ArgPodNamespace},
		{name: "ADD malformed", command: CommandAdd, args: "K8S_POD_NAME", wantCode: 4, wantInMsg: "CNI_ARGS"},
		{name: "DEL without args", command: CommandDel, args: "", want: PodRef{}},
		{name: "DEL with name only", command: CommandDel, args: "K8S_POD_NAME=p", want: PodRef{Name: "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Command: tt.command, ContainerID: "c1", Args: tt.args}
			got, err := req.Pod()
			if tt.wantCode != 0 {
				var cniErr *types.Error
				if !errors.As(err, &cniErr) || cniErr.Code != tt.wantCode || !strings.Contains(cniErr.Msg, tt.wantInMsg) {
					t.Fatalf("Pod() err = %v, want code %d naming %s", err, tt.wantCode, tt.wantInMsg)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Pod() = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestAsError(t *testing.T) {
	ipam := Errorf(CodeIPAM, "pool 10.1.0.0/24 exhausted")
	tests := []struct {
		name     string
		err      error
		wantCode uint
		wantMsg  string
	}{
		{name: "CNI error kept", err: ipam, wantCode: CodeIPAM, wantMsg: "pool 10.1.0.0/24 exhausted"},
		{name: "wrapped CNI error keeps its code", err: fmt.Errorf("pod ns/p: %w", ipam), wantCode: CodeIPAM,
			wantMsg: "pod ns/p: pool 10.1.0.0/24 exhausted"},
		{name: "plain error is internal", err: errors.New("boom"), wantCode: CodeInternal, wantMsg: "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AsError(tt.err)
			if got.Code != tt.wantCode || got.Msg != tt.wantMsg {
				t.Fatalf("AsError = code %d %q, want %d %q", got.Code, got.Msg, tt.wantCode, tt.wantMsg)
			}
		})
	}
	if AsError(nil) != nil {
		t.Fatal("AsError(nil) != nil")
	}
}
