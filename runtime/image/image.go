// Package image is the one view of a stored image that the rest of the runtime uses, whatever
// its format: an appc ACI keeps its image manifest, an OCI image its config, and both present
// their filesystem as an ordered list of read-only trees ready to be overlayfs lower dirs.
package image

import (
	"strings"
	"time"

	"github.com/appc/spec/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Format says which specification an image follows.
type Format string

const (
	ACI Format = "appc" // an appc ACI, identified by the sha512 of its uncompressed tar
	OCI Format = "oci"  // an OCI image, identified by the sha256 digest of its manifest
)

// Image is a stored image, ready to be rendered as a pod's root filesystem.
type Image struct {
	// ID is "sha512-<hex>" for an ACI (the appc image ID) and "sha256:<hex>" (the manifest
	// digest) for an OCI image.
	ID     string
	Format Format
	// Name is the appc name (example.com/app) or the OCI reference it was fetched as
	// (docker.io/library/busybox:latest).
	Name string
	// Aliases are the other references an OCI image was fetched as (the same content under
	// another tag or repository).
	Aliases []string
	// Labels are the appc labels (version, os, arch); an OCI image gets version from its tag.
	Labels     map[string]string
	ImportTime time.Time
	// LastUsed is when a pod last used the image (ImportTime until then).
	LastUsed time.Time
	// Size is the image's size in the store: blobs plus extracted trees.
	Size int64
	// Layers are absolute paths of read-only trees, lowest first. Each is the root filesystem
	// contribution of one OCI layer, or of one ACI (its rootfs/ directory) with the ACI's
	// dependencies before it. Stacked as overlayfs lower dirs they make the app's root.
	Layers []string

	ACIManifest *schema.ImageManifest // set when Format is ACI
	OCIConfig   *v1.ConfigFile        // set when Format is OCI

	// Source is the URL or path the image was imported from.
	Source string
	// Trusted reports that the image's signature was verified when it was imported; only then
	// do its trees keep device nodes and setuid/setgid bits.
	Trusted bool
	// Signer names the key that signed the image (its fingerprint), when Trusted.
	Signer string
}

// IsID says whether s is an image ID, full or shortened: "sha512-", "sha256:" or "sha256-"
// and hex digits.
func IsID(s string) bool {
	for _, p := range []string{"sha512-", "sha256:", "sha256-"} {
		if strings.HasPrefix(s, p) && len(s) > len(p) && strings.Trim(s[len(p):], "0123456789abcdef") == "" {
			return true
		}
	}
	return false
}

// ShortID is the ID as rkt prints it: "sha512-" and 32 hex digits, or "sha256:" and 12.
func (i *Image) ShortID() string {
	switch {
	case len(i.ID) > 7+32 && i.ID[:7] == "sha512-":
		return i.ID[:7+32]
	case len(i.ID) > 7+12 && i.ID[:7] == "sha256:":
		return i.ID[:7+12]
	}
	return i.ID
}

// NameVersion is the name with the version label appended, as "name:version" (appc) or the
// name itself when it already carries a tag (OCI).
func (i *Image) NameVersion() string {
	if v := i.Labels["version"]; v != "" && i.Format == ACI {
		return i.Name + ":" + v
	}
	return i.Name
}
