// Package images makes the container images `kubeadm init` pulls (the control plane's
// kube-apiserver, kube-controller-manager and kube-scheduler, kube-proxy, etcd, CoreDNS and
// pause) from binaries built here from the same sources as the rest of the cluster, and pushes
// them to a registry of the caller's. Each image is one layer of just what its program needs,
// laid out as the upstream image has it, with fixed mtimes and ordering, so that the same
// binaries always give the same digests. Binaries builds the inputs (cached), Build makes the
// images, Push uploads them.
package images

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Registry is where kubeadm pulls its images from by default; Build names the images there.
const Registry = "registry.k8s.io"

// PauseVersion is the pause image's tag kubeadm v1.37 asks for (constants.PauseVersion);
// kube/images/pause prints it with -v.
const PauseVersion = "3.10.2"

// ControlPlane are the Kubernetes commands whose images Build makes; Sources.Kube holds them.
var ControlPlane = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}

// Sources are what the images are made of.
type Sources struct {
	Kube           string // directory holding the ControlPlane binaries
	KubeVersion    string // their version, the images' tag: "v1.37.2"
	Etcd           string // etcd's binary
	EtcdVersion    string // its version: "3.6.16"
	CoreDNS        string // CoreDNS's binary
	CoreDNSVersion string // its version, the image's tag: "v1.14.6"
	Pause          string // the pause binary (kube/images/pause)
	// Userland are the files of this machine that kube-proxy's image carries beside it (see
	// Userland), read under Root.
	Userland []string
	// Root is the file system Userland and the CA certificates are read from; "" is "/".
	Root string
}

// EtcdTag is etcd's image tag in kubeadm's version-revision style: "3.6.16-0". A cluster
// configuration names it (etcd.local.imageTag), as kubeadm defaults to the etcd it was
// released with.
func (s Sources) EtcdTag() string { return strings.TrimPrefix(s.EtcdVersion, "v") + "-0" }

// searchPath is the images' PATH (Docker's default): kubeadm's static pods run their
// programs by name (command: [kube-apiserver, ...]).
const searchPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// capNetBindService is the security.capability attribute of `setcap cap_net_bind_service=+ep`
// (VFS_CAP_REVISION_2, effective, permitted bit 10). The upstream CoreDNS image sets it on
// /coredns so that it binds port 53 as a user other than root: kubeadm's CoreDNS Deployment
// drops every capability but NET_BIND_SERVICE.
const capNetBindService = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// caCertificates is the CA bundle CoreDNS's image carries, as the distroless base of the
// upstream image does, for forwarding over TLS.
const caCertificates = "/etc/ssl/certs/ca-certificates.crt"

// A spec is one image: its reference, its layer's entries and its run configuration.
type spec struct {
	Ref    string
	Files  []file
	Config v1.Config
}

// specs are the images made of src. Every input is checked here, so a missing binary is an
// error naming it before any layer is written.
func (src Sources) specs() ([]spec, error) {
	root := src.Root
	if root == "" {
		root = "/"
	}
	tmp := dir("tmp", fs.ModeSticky|0o777)
	var out []spec
	for _, name := range ControlPlane {
		bin, err := regular("usr/local/bin/"+name, filepath.Join(src.Kube, name), 0o755)
		if err != nil {
			return nil, fmt.Errorf("%s binary: %w", name, err)
		}
		files := []file{bin, tmp}
		if name == "kube-proxy" {
			if len(src.Userland) == 0 {
				return nil, fmt.Errorf("kube-proxy's userland: no files listed (Sources.Userland: see Userland)")
			}
			tree, err := hostTree(root, src.Userland)
			if err != nil {
				return nil, fmt.Errorf("kube-proxy's userland: %w", err)
			}
			files = append(files, tree...)
		}
		out = append(out, spec{
			Ref:    Registry + "/" + name + ":" + src.KubeVersion,
			Files:  files,
			Config: v1.Config{Env: []string{searchPath}},
		})
	}

	etcd, err := regular("usr/local/bin/etcd", src.Etcd, 0o755)
	if err != nil {
		return nil, fmt.Errorf("etcd binary: %w", err)
	}
	out = append(out, spec{
		Ref:    Registry + "/etcd:" + src.EtcdTag(),
		Files:  []file{etcd, tmp},
		Config: v1.Config{Env: []string{searchPath}},
	})

	coredns, err := regular("coredns", src.CoreDNS, 0o755)
	if err != nil {
		return nil, fmt.Errorf("coredns binary: %w", err)
	}
	coredns.Xattrs = map[string]string{"security.capability": capNetBindService}
	certs, err := regular(strings.TrimPrefix(caCertificates, "/"), filepath.Join(root, caCertificates), 0o644)
	if err != nil {
		return nil, fmt.Errorf("CA certificates for coredns (Debian package ca-certificates): %w", err)
	}
	out = append(out, spec{
		Ref:   Registry + "/coredns/coredns:" + src.CoreDNSVersion,
		Files: []file{coredns, certs, tmp},
		Config: v1.Config{
			Entrypoint:   []string{"/coredns"},
			User:         "65532:65532", // distroless's nonroot
			WorkingDir:   "/",
			ExposedPorts: map[string]struct{}{"53/tcp": {}, "53/udp": {}},
		},
	})

	pause, err := regular("pause", src.Pause, 0o755)
	if err != nil {
		return nil, fmt.Errorf("pause binary: %w", err)
	}
	out = append(out, spec{
		Ref:   Registry + "/pause:" + PauseVersion,
		Files: []file{pause},
		// The user Kubernetes' pause image runs as.
		Config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
	})
	return out, nil
}

// image is the spec as a one-layer OCI image.
func (s spec) image() (v1.Image, error) {
	l, err := layer(s.Files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       s.Config,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.Append(img, mutate.Addendum{
		Layer:   l,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "cairn kube/images"},
	})
}

// Build makes kubeadm's images of src, keyed by their references under Registry
// ("registry.k8s.io/kube-apiserver:v1.37.2", ...). Each layer is read through once here for
// its digest; Push reads it again.
func Build(ctx context.Context, src Sources) (map[string]v1.Image, error) {
	specs, err := src.specs()
	if err != nil {
		return nil, err
	}
	imgs := make(map[string]v1.Image, len(specs))
	for _, s := range specs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := s.image()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.Ref, err)
		}
		imgs[s.Ref] = img
	}
	return imgs, nil
}
