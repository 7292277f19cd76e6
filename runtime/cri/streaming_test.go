package cri

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestStreamingRequests: the streaming RPCs' refusals before any session, on a server
// over an empty data directory, and where its streaming server listens by default.
func TestStreamingRequests(t *testing.T) {
	s, err := New(context.Background(), Config{Dir: t.TempDir(), CNIConfDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, ok := s.StreamAddr().(*net.TCPAddr); !ok || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) || a.Port == 0 {
		t.Errorf("streaming server on %v, want 127.0.0.1 and a port the kernel picked", s.StreamAddr())
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"exec in an unknown container", func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "feed", Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.NotFound},
		{"exec without a container", func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.InvalidArgument},
		{"port-forward without a sandbox", func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{Port: []int32{80}})
			return err
		}, codes.InvalidArgument},
		{"attach to an unknown container", func() error {
			_, err := s.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "feed", Stdout: true})
			return err
		}, codes.NotFound},
		{"port-forward to an unknown sandbox", func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "feed", Port: []int32{80}})
			return err
		}, codes.NotFound},
	} {
		if err := statusOf(tc.call()); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}
