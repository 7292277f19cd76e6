package cri

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The image volumes refused before any image is looked up or rendered; a config without one
// comes back as it is.
func TestImageVolumesRefused(t *testing.T) {
	image := &runtimeapi.ImageSpec{Image: "sha256:0123"}
	for name, m := range map[string]*runtimeapi.Mount{
		"an image and a host path":   {ContainerPath: "/v", HostPath: "/srv", Image: image, Readonly: true},
		"a writable image volume":    {ContainerPath: "/v", Image: image},
		"a sub path without image":   {ContainerPath: "/v", HostPath: "/srv", ImageSubPath: "data"},
		"an absolute sub path":       {ContainerPath: "/v", Image: image, Readonly: true, ImageSubPath: "/etc"},
		"a sub path out of the tree": {ContainerPath: "/v", Image: image, Readonly: true, ImageSubPath: "../../etc"},
		"a sub path of ..":           {ContainerPath: "/v", Image: image, Readonly: true, ImageSubPath: ".."},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := &runtimeapi.ContainerConfig{Mounts: []*runtimeapi.Mount{m}}
			_, err := (&Server{}).imageVolumes(context.Background(), nil, "id1", cfg)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%v, want InvalidArgument", err)
			}
		})
	}
	cfg := &runtimeapi.ContainerConfig{Mounts: []*runtimeapi.Mount{{ContainerPath: "/v", HostPath: "/srv"}}}
	if got, err := (&Server{}).imageVolumes(context.Background(), nil, "id1", cfg); err != nil || got != cfg {
		t.Errorf("without image volumes: %p %v, want the config itself", got, err)
	}
}
