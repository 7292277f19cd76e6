package stage0

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

type images map[string]*image.Image

func (im images) Image(_ context.Context, ref string) (*image.Image, error) {
	if img, ok := im[ref]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("image %s: not found", ref)
}

// testHost is a host with one image, "sh": /bin/sh as its app, a mount point data at /data.
func testHost(t *testing.T) *Host {
	t.Helper()
	root := layer(t, "bin/sh=#!sh", "etc/passwd=root:x:0:0::/:/bin/sh\n", "etc/group=root:x:0:\n")
	name, _ := types.NewACIdentifier("example.com/sh")
	img := &image.Image{ID: "sha512-" + strings.Repeat("ab", 64), Format: image.ACI, Name: "example.com/sh", Layers: []string{root},
		ACIManifest: &schema.ImageManifest{ACKind: "ImageManifest", ACVersion: schema.AppContainerVersion, Name: *name,
			App: &types.App{Exec: types.Exec{"/bin/sh"}, User: "0", Group: "0", MountPoints: []types.MountPoint{{Name: "data", Path: "/data"}}}}}
	return &Host{Pods: pod.NewStore(t.TempDir()), Images: images{"sh": img, img.ID: img}}
}

func TestPrepare(t *testing.T) {
	h := testHost(t)
	uf := filepath.Join(t.TempDir(), "uuid")
	p, err := h.Prepare(context.Background(), &Config{
		Network: Network{Net: []string{"none"}, HostsEntries: []string{"10.0.0.1=db"}},
		Volumes: []types.Volume{{Name: "logs", Kind: "empty"}}, Mounts: []schema.Mount{{Volume: "logs", Path: "/var/log"}},
		Env: []string{"A=pod"}, Memory: "64M", UserLabels: map[string]string{"tier": "1"}, UUIDFileSave: uf,
		Apps: []App{{Image: "sh", Args: []string{"-c", "true"}, Env: []string{"B=app"}}, {Image: "sh", Name: "second", ReadOnlyRootFS: new(true)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if b, _ := os.ReadFile(uf); strings.TrimSpace(string(b)) != p.UUID {
		t.Errorf("uuid file %q, want %s", b, p.UUID)
	}
	man, err := p.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Apps) != 2 || man.Apps[0].Name != "sh" || man.Apps[1].Name != "second" || !man.Apps[1].ReadOnlyRootFS {
		t.Fatalf("apps %+v", man.Apps)
	}
	a := man.Apps[0]
	if !reflect.DeepEqual([]string(a.App.Exec), []string{"/bin/sh", "-c", "true"}) {
		t.Errorf("exec %q", a.App.Exec)
	}
	if v, _ := a.App.Environment.Get("A"); v != "pod" {
		t.Errorf("env %v", a.App.Environment)
	}
	if v, _ := a.App.Environment.Get("B"); v != "app" {
		t.Errorf("env %v", a.App.Environment)
	}
	if !reflect.DeepEqual(a.Mounts, []schema.Mount{{Volume: "logs", Path: "/var/log"}, {Volume: "sh-data", Path: "/data"}}) {
		t.Errorf("mounts %+v", a.Mounts)
	}
	var vols []string
	for _, v := range man.Volumes {
		vols = append(vols, string(v.Name))
	}
	if !reflect.DeepEqual(vols, []string{"logs", "sh-data", "second-data"}) {
		t.Errorf("volumes %v", vols)
	}
	if man.UserLabels["tier"] != "1" {
		t.Errorf("user labels %v", man.UserLabels)
	}
	opts, err := stage1.ReadOptions(p.Path())
	if err != nil {
		t.Fatal(err)
	}
	if opts.Net != "none" || len(opts.Apps) != 2 || !reflect.DeepEqual(opts.HostsEntries, []string{"10.0.0.1=db"}) {
		t.Errorf("options %+v", opts)
	}
}

// run-prepared's flags replace what the pod was prepared with; a refused change leaves the
// pod prepared and as it was.
func TestLockPrepared(t *testing.T) {
	h := testHost(t)
	prepare := func(apps ...App) string {
		p, err := h.Prepare(context.Background(), &Config{Network: Network{Net: []string{"none"}, Hostname: "before"}, Apps: apps})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.MarkPrepared(); err != nil {
			t.Fatal(err)
		}
		return p.UUID
	}
	one, two := prepare(App{Image: "sh"}), prepare(App{Image: "sh"}, App{Image: "sh"})
	optsOf := func(uuid string) *stage1.Options {
		p, err := h.Pods.Get(uuid)
		if err != nil {
			t.Fatal(err)
		}
		o, err := stage1.ReadOptions(p.Path())
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, c := range []struct {
		uuid string
		ch   Changes
		want string
	}{
		{one, Changes{Net: []string{"nosuchnet"}}, "nosuchnet"},
		{one, Changes{Net: []string{"host", "default"}}, "host"},
		{one, Changes{DNS: []string{"host"}, DNSSearch: []string{"example.com"}}, "--dns=host"},
		{one, Changes{HostsEntries: []string{"db"}}, "db"},
		{two, Changes{Interactive: new(true)}, "--interactive"},
	} {
		if _, err := h.LockPrepared(c.uuid, &c.ch); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.ch, err, c.want)
		}
		if p, err := h.Pods.Get(c.uuid); err != nil || p.Phase != pod.PhasePrepared {
			t.Fatalf("pod after a refused change: %v %v", p, err)
		}
		if o := optsOf(c.uuid); o.Net != "none" || o.Hostname != "before" || o.Interactive {
			t.Errorf("options changed by a refused change: %+v", o)
		}
	}
	p, err := h.LockPrepared(one, &Changes{Net: []string{"host"}, Hostname: new("after"), DNS: []string{"10.0.0.53"},
		HostsEntries: []string{"10.0.0.1=db"}, Interactive: new(true)})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if o := optsOf(one); o.Net != "host" || o.Hostname != "after" || !reflect.DeepEqual(o.DNS, []string{"10.0.0.53"}) ||
		!reflect.DeepEqual(o.HostsEntries, []string{"10.0.0.1=db"}) || !o.Interactive {
		t.Errorf("options %+v", o)
	}
}

// A mistake leaves no pod behind, and its error names it.
func TestPrepareFailsBeforeThePodExists(t *testing.T) {
	h := testHost(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Apps: []App{{Image: "nope"}}}, "nope"},
		{Config{Apps: []App{{Image: "sh", Exec: "/bin/nope"}}}, "/bin/nope"},
		{Config{Apps: []App{{Image: "sh", User: "nobody"}}}, "nobody"},
		{Config{Apps: []App{{Image: "sh"}, {Image: "sh", Name: "sh"}}}, `two apps named "sh"`},
		{Config{Apps: []App{{Image: "sh", Mounts: []schema.Mount{{Volume: "v", Path: "/v"}}}}}, "volume=v"},
		{Config{Network: Network{Net: []string{"nosuchnet"}}, Apps: []App{{Image: "sh"}}}, "nosuchnet"},
		{Config{Ports: []string{"http:80"}, Apps: []App{{Image: "sh"}}}, "http"},
		{Config{Volumes: []types.Volume{{Name: "v", Kind: "host", Source: "/no/such/source"}}, Apps: []App{{Image: "sh"}}}, "/no/such/source"},
		{Config{EnvFiles: []string{"/no/such/env-file"}, Apps: []App{{Image: "sh"}}}, "/no/such/env-file"},
	} {
		if _, err := h.Prepare(context.Background(), &c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.cfg, err, c.want)
		}
		if pods, err := h.Pods.List(); err != nil || len(pods) != 0 {
			t.Fatalf("%+v left pods %v %v", c.cfg, pods, err)
		}
	}
}
