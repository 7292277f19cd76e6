package network

import (
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cairn-os/cairn/runtime/image"
)

func TestDeclaredPorts(t *testing.T) {
	aci := &image.Image{ACIManifest: &schema.ImageManifest{App: &types.App{Ports: []types.Port{{Name: "http", Port: 80, Protocol: "tcp"}}}}}
	if got := DeclaredPorts(aci); !reflect.DeepEqual(got, []ImagePort{{"http", 80, "tcp"}}) {
		t.Errorf("appc: %+v", got)
	}
	oci := &image.Image{OCIConfig: &v1.ConfigFile{Config: v1.Config{ExposedPorts: map[string]struct{}{"53/udp": {}, "8080/tcp": {}, "bogus": {}}}}}
	if got := DeclaredPorts(oci); !reflect.DeepEqual(got, []ImagePort{{"53-udp", 53, "udp"}, {"8080-tcp", 8080, "tcp"}}) {
		t.Errorf("oci: %+v", got)
	}
}

func TestForwards(t *testing.T) {
	decl := []ImagePort{{"http", 80, "tcp"}, {"dns", 53, "udp"}}
	got, err := Forwards([]string{"http:8888", "dns:127.0.0.1:5353"}, decl)
	want := []PortMapping{{Name: "http", HostPort: 8888, ContainerPort: 80, Protocol: "tcp"}, {Name: "dns", HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Forwards = %+v, %v", got, err)
	}
	for flags, wantErr := range map[string]string{
		"nosuch:80":           "no app declares",
		"http:0":              "not 1-65535",
		"http:x:80":           "not an address",
		"http":                "NAME:[HOSTIP:]HOSTPORT",
		"http:8888,http:8888": "already forwarded",
	} {
		_, err := Forwards(strings.Split(flags, ","), decl)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: %v, want %q", flags, err, wantErr)
		}
	}
	if _, err := Forwards([]string{"http:1"}, append(decl, ImagePort{"http", 81, "tcp"})); err == nil || !strings.Contains(err.Error(), "more than one app") {
		t.Errorf("ambiguous name: %v", err)
	}
}
