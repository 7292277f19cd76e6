package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxDependencyDepth bounds ACI dependency chains (and so breaks cycles).
const maxDependencyDepth = 32

// image builds the pod-facing view of r. rs are all records, for resolving an ACI's
// dependencies; with rs nil the dependencies are left out.
func (s *Store) image(rs []*record, r *record, chain []string) (*image.Image, error) {
	img := &image.Image{
		ID:         r.ID,
		Format:     r.Format,
		Name:       r.Name,
		Aliases:    slices.Clone(r.Aliases),
		Labels:     r.Labels,
		ImportTime: r.ImportTime,
		LastUsed:   r.LastUsed,
		Size:       r.Size,
		Source:     r.Source,
		Trusted:    r.Trusted,
		Signer:     r.Signer,
	}
	switch r.Format {
	case image.ACI:
		m, err := s.aciManifest(r)
		if err != nil {
			return nil, err
		}
		img.ACIManifest = m
		if rs != nil {
			if len(chain) >= maxDependencyDepth {
				return nil, fmt.Errorf("image %s: %w: dependency chain deeper than %d (a cycle?)", r.Name, ErrDependency, maxDependencyDepth)
			}
			for _, d := range m.Dependencies {
				dr, err := resolveDependency(rs, d)
				if err != nil {
					return nil, fmt.Errorf("image %s: %w", r.Name, err)
				}
				if slices.Contains(chain, dr.ID) {
					return nil, fmt.Errorf("image %s: %w: dependency cycle through %s", r.Name, ErrDependency, dr.Name)
				}
				dimg, err := s.image(rs, dr, append(chain, r.ID))
				if err != nil {
					return nil, err
				}
				img.Layers = append(img.Layers, dimg.Layers...)
			}
		}
		for _, t := range r.Trees {
			img.Layers = append(img.Layers, filepath.Join(s.TreePath(t), aci.RootfsDir))
		}
	case image.OCI:
		cfg, err := s.ociConfig(r)
		if err != nil {
			return nil, err
		}
		img.OCIConfig = cfg
		for _, t := range r.Trees {
			img.Layers = append(img.Layers, s.TreePath(t))
		}
	default:
		return nil, fmt.Errorf("%w: image %s has unknown format %q", ErrCorrupt, r.ID, r.Format)
	}
	return img, nil
}

func (s *Store) aciManifest(r *record) (*schema.ImageManifest, error) {
	if len(r.Trees) == 0 {
		return nil, fmt.Errorf("%w: image %s has no tree", ErrCorrupt, r.ID)
	}
	f, err := os.Open(filepath.Join(s.TreePath(r.Trees[len(r.Trees)-1]), aci.ManifestName))
	if err != nil {
		return nil, fmt.Errorf("%w: image %s: %v", ErrCorrupt, r.ID, err)
	}
	defer f.Close()
	m, err := aci.ReadManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%w: image %s: %v", ErrCorrupt, r.ID, err)
	}
	return m, nil
}

func (s *Store) ociConfig(r *record) (*v1.ConfigFile, error) {
	f, err := os.Open(s.BlobPath(r.Config))
	if err != nil {
		return nil, fmt.Errorf("%w: image %s: config: %v", ErrCorrupt, r.ID, err)
	}
	defer f.Close()
	cfg, err := v1.ParseConfigFile(f)
	if err != nil {
		return nil, fmt.Errorf("%w: image %s: config: %v", ErrCorrupt, r.ID, err)
	}
	return cfg, nil
}

// resolveDependency finds the image an ACI dependency names: by image ID when given (its
// name must agree), else the newest image with that name whose labels include the wanted ones.
func resolveDependency(rs []*record, d types.Dependency) (*record, error) {
	if d.ImageID != nil {
		id := d.ImageID.String()
		for _, r := range rs {
			if r.ID == id || (len(id) < len(r.ID) && r.ID[:len(id)] == id) {
				if r.Name != d.ImageName.String() {
					return nil, fmt.Errorf("%w: dependency %s: image %s is named %s", ErrDependency, d.ImageName, id, r.Name)
				}
				return r, nil
			}
		}
		return nil, fmt.Errorf("%w: dependency %s (%s)", ErrDependency, d.ImageName, id)
	}
	var best *record
	for _, r := range rs {
		if r.Format != image.ACI || r.Name != d.ImageName.String() {
			continue
		}
		ok := true
		for _, l := range d.Labels {
			if r.Labels[l.Name.String()] != l.Value {
				ok = false
				break
			}
		}
		if ok {
			best = r
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: dependency %s%s", ErrDependency, d.ImageName, labelString(d.Labels))
	}
	return best, nil
}

func labelString(ls types.Labels) string {
	s := ""
	for _, l := range ls {
		s += fmt.Sprintf(",%s=%s", l.Name, l.Value)
	}
	return s
}
