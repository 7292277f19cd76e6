package stage0

import (
	"errors"
	"reflect"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func TestAppFromOCIImage(t *testing.T) {
	img := &image.Image{Format: image.OCI, Name: "docker.io/library/nginx:1.25", OCIConfig: &v1.ConfigFile{Config: v1.Config{
		Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"nginx", "-g", "daemon off;"},
		Env: []string{"PATH=/usr/sbin:/bin", "NGINX_VERSION=1.25"}, User: "101:102", WorkingDir: "/srv"}}}
	a, err := AppFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]string(a.Exec), []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}) ||
		a.User != "101" || a.Group != "102" || a.WorkingDirectory != "/srv" {
		t.Errorf("app %+v", a)
	}
	if v, _ := a.Environment.Get("NGINX_VERSION"); v != "1.25" {
		t.Errorf("env %v", a.Environment)
	}
	n, _ := AppName(img.Name, map[string]bool{"nginx": true})
	if n != "nginx-2" {
		t.Errorf("app name %q", n)
	}
}

// Arguments are appended to the image's command, or to --exec's, which replaces the image's.
func TestAppArgs(t *testing.T) {
	img := &image.Image{Format: image.OCI, Name: "example.com/worker", OCIConfig: &v1.ConfigFile{Config: v1.Config{
		Entrypoint: []string{"/worker"}, Cmd: []string{"--default"}}}}
	for _, c := range []struct {
		app  App
		want []string
	}{
		{App{}, []string{"/worker", "--default"}},
		{App{Args: []string{"--loglevel", "verbose"}}, []string{"/worker", "--default", "--loglevel", "verbose"}},
		{App{Exec: "/bin/ov"}, []string{"/bin/ov"}},
		{App{Exec: "/bin/ov", Args: []string{"--loglevel", "verbose"}}, []string{"/bin/ov", "--loglevel", "verbose"}},
	} {
		a, err := AppFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := applyApp(a, &Config{}, &podEnv{}, &c.app); err != nil || !reflect.DeepEqual([]string(a.Exec), c.want) {
			t.Errorf("%+v: exec %q %v, want %q", c.app, a.Exec, err, c.want)
		}
	}
	a := &types.App{}
	if err := applyApp(a, &Config{}, &podEnv{}, &App{Args: []string{"x"}}); !errors.Is(err, stage1.ErrNoExec) {
		t.Errorf("arguments for an image without a command: %v", err)
	}
}

func TestCapabilityNames(t *testing.T) {
	got := CapabilityNames([]string{"CAP_CHOWN", "sys_admin", " kill ", ""})
	if want := []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_KILL"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestImplicitVolumes(t *testing.T) {
	ra := schema.RuntimeApp{Name: "web", App: &types.App{MountPoints: []types.MountPoint{
		{Name: "data", Path: "/data"},                   // a pod volume of that name fills it
		{Name: "logs", Path: "/var/log/"},               // a mount at its path fills it
		{Name: "cache", Path: "/cache", ReadOnly: true}, // nothing does
		{Name: "tmp", Path: "/tmp"},                     // nothing does; web-tmp is taken
	}}, Mounts: []schema.Mount{{Volume: "logvol", Path: "/var/log"}}}
	vols := []types.Volume{{Name: "data", Kind: "empty"}, {Name: "logvol", Kind: "empty"}, {Name: "web-tmp", Kind: "empty"}}
	got := implicitVolumes(&ra, vols)
	mode, id, ro, rw := "0755", 0, true, false
	want := []types.Volume{
		{Name: "web-cache", Kind: "empty", Mode: &mode, UID: &id, GID: &id, ReadOnly: &ro},
		{Name: "web-tmp-2", Kind: "empty", Mode: &mode, UID: &id, GID: &id, ReadOnly: &rw},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("volumes\n got %+v\nwant %+v", got, want)
	}
	wantMounts := []schema.Mount{{Volume: "logvol", Path: "/var/log"}, {Volume: "web-cache", Path: "/cache"}, {Volume: "web-tmp-2", Path: "/tmp"}}
	if !reflect.DeepEqual(ra.Mounts, wantMounts) {
		t.Errorf("mounts %+v, want %+v", ra.Mounts, wantMounts)
	}
}
