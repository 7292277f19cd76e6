package stage0

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cairn-os/cairn/runtime/image"
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
	if _, err := applyApp(a, &Config{}, &App{Args: []string{"-v"}}); err != nil || !reflect.DeepEqual([]string(a.Exec), []string{"/docker-entrypoint.sh", "-v"}) {
		t.Errorf("image args: %v %v", a.Exec, err)
	}
}

func TestCapabilityNames(t *testing.T) {
	got := CapabilityNames([]string{"CAP_CHOWN", "sys_admin", " kill ", ""})
	if want := []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_KILL"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
