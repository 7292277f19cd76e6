package stage0

import (
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

const validPod = `{"acKind":"PodManifest","acVersion":"0.8.11",
 "apps":[{"name":"web","image":{"id":"sha512-` + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" + `"},
   "app":{"exec":["/bin/sh","-c","echo hi"],"user":"0","group":"0"},
   "mounts":[{"volume":"data","path":"/data"}]}],
 "volumes":[{"name":"data","kind":"empty"}],
 "ports":[{"name":"http","hostPort":8080}]}`

// Pod manifests are the user's bytes: each malformed one is refused with a reason, none
// panics.
func TestParsePodManifest(t *testing.T) {
	if _, err := ParsePodManifest([]byte(validPod)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	swap := func(old, new string) string { return strings.Replace(validPod, old, new, 1) }
	for _, c := range []struct {
		name, in, want string
	}{
		{"not json", `{"acKind":`, "not JSON"},
		{"wrong kind", swap(`"PodManifest"`, `"ImageManifest"`), "ACKind"},
		{"too large", `{"x":"` + strings.Repeat("a", MaxPodManifest) + `"}`, "larger than"},
		{"no apps", swap(`"apps":[`, `"apps":[],"x":[`), "no apps"},
		{"no image ID", swap(`"image":{"id":"sha512-aaaa`, `"image":{"x":"sha512-aaaa`), "image"},
		{"two apps of a name", swap(`"apps":[{`, `"apps":[{"name":"web","image":{"id":"sha512-`+strings.Repeat("b", 128)+`"}},{`), "web"},
		{"exec missing", swap(`"exec":["/bin/sh","-c","echo hi"],`, ``), "exec"},
		{"mount of no volume", swap(`"volume":"data"`, `"volume":"other"`), "other"},
		{"relative mount", swap(`"path":"/data"`, `"path":"data"`), "not absolute"},
		{"mount with its own volume", swap(`"path":"/data"}`, `"path":"/data","appVolume":{"name":"x","kind":"empty"}}`), "not supported"},
		{"host volume without source", swap(`"kind":"empty"`, `"kind":"host"`), "source"},
		{"relative host source", swap(`"kind":"empty"`, `"kind":"host","source":"rel"`), "source"},
		{"unknown volume kind", swap(`"kind":"empty"`, `"kind":"nfs"`), "volume kind"},
		{"duplicate volume", swap(`"volumes":[`, `"volumes":[{"name":"data","kind":"empty"},`), "data"},
		{"pod isolators", swap(`"ports":`, `"isolators":[{"name":"resource/memory","value":{"limit":"1G"}}],"ports":`), "isolators"},
		{"isolator without value", swap(`"user":"0"`, `"isolators":[{"name":"resource/memory"}],"user":"0"`), "invalid pod manifest"},
		{"bad port", swap(`"hostPort":8080`, `"hostPort":0`), "port"},
		{"bad app name", swap(`"name":"web"`, `"name":"Web App"`), "invalid pod manifest"},
	} {
		_, err := ParsePodManifest([]byte(c.in))
		if !errors.Is(err, ErrBadPodManifest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrBadPodManifest naming %q", c.name, err, c.want)
		}
	}
}

// FuzzParsePodManifest: whatever the bytes, the parser does not panic, and what it accepts
// keeps its promises: it encodes and reads back the same, each mount names a volume of the
// pod at an absolute path, each host volume's source is absolute, each app has an image ID.
func FuzzParsePodManifest(f *testing.F) {
	f.Add([]byte(validPod))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParsePodManifest(data)
		if err != nil {
			return
		}
		vols := map[types.ACName]types.Volume{}
		for _, v := range m.Volumes {
			vols[v.Name] = v
			if v.Kind == "host" && !path.IsAbs(v.Source) {
				t.Fatalf("host volume %s with source %q accepted", v.Name, v.Source)
			}
		}
		for _, ra := range m.Apps {
			if ra.Image.ID.Empty() {
				t.Fatalf("app %s without an image ID accepted", ra.Name)
			}
			for _, mt := range ra.Mounts {
				if _, ok := vols[mt.Volume]; !ok || !path.IsAbs(mt.Path) {
					t.Fatalf("app %s: mount %+v accepted", ra.Name, mt)
				}
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted manifest does not encode: %v", err)
		}
		m2, err := ParsePodManifest(b)
		if err != nil || len(m2.Apps) != len(m.Apps) || len(m2.Volumes) != len(m.Volumes) {
			t.Fatalf("accepted manifest does not read back: %v", err)
		}
	})
}
