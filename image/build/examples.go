package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/aci"
)

// Example is an app image every Cairn image ships, so that `rkt run` has something to run on
// a host that reaches no registry: one of Cairn's static programs wrapped in an ACI.
type Example struct {
	File   string // in ExamplesDir
	Name   string // appc name
	Binary string // static program in BinDir; it becomes /hello in the ACI's rootfs
	Exec   string
}

// ExamplesDir is where the images' example ACIs are.
const ExamplesDir = "/usr/share/cairn/examples"

// Examples are the example images.
var Examples = []Example{
	{File: "hello.aci", Name: "example.com/hello", Binary: "cairn-hello", Exec: "/hello"},
}

// exampleOps builds the example ACIs whose programs are in BinDir.
func (b *Builder) exampleOps() ([]FileOp, error) {
	var ops []FileOp
	for _, e := range Examples {
		p := filepath.Join(b.Config.BinDir, e.Binary)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := checkStatic(p); err != nil {
			return nil, fmt.Errorf("example %s: %w", e.File, err)
		}
		data, err := ExampleACI(e, p, b.Config.Version, time.Unix(b.Config.SourceDateEpoch, 0).UTC())
		if err != nil {
			return nil, fmt.Errorf("example %s: %w", e.File, err)
		}
		ops = append(ops, FileOp{Path: ExamplesDir + "/" + e.File, Mode: 0o644, Data: data})
	}
	return ops, nil
}

// ExampleACI is e as a gzip-compressed ACI with the program at bin, reproducible: every
// timestamp is mtime.
func ExampleACI(e Example, bin, version string, mtime time.Time) ([]byte, error) {
	name, err := types.NewACIdentifier(e.Name)
	if err != nil {
		return nil, err
	}
	m := schema.BlankImageManifest()
	m.Name = *name
	for _, l := range [][2]string{{"version", version}, {"os", "linux"}, {"arch", "amd64"}} {
		m.Labels = append(m.Labels, types.Label{Name: types.ACIdentifier(l[0]), Value: l[1]})
	}
	m.App = &types.App{Exec: types.Exec{e.Exec}, User: "0", Group: "0"}
	prog, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	aw, err := aci.NewWriter(zw, m, mtime)
	if err != nil {
		return nil, err
	}
	hdr := &tar.Header{Name: strings.TrimPrefix(e.Exec, "/"), Mode: int64(fs.FileMode(0o755)), Size: int64(len(prog)),
		ModTime: mtime, Typeflag: tar.TypeReg}
	if err := aw.Add(hdr, bytes.NewReader(prog)); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
