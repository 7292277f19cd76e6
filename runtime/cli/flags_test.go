package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/stage1"
)

func TestParseFlags(t *testing.T) {
	good := []string{"data,kind=host,source=/srv,readOnly=true", "s,kind=empty,mode=0700"}
	for _, v := range good {
		if _, err := parseVolumeFlag(v); err != nil {
			t.Errorf("--volume %q: %v", v, err)
		}
	}
	bad := []string{"", "data", "data,kind=host", "data,kind=host,source=rel", "data,kind=nfs,source=/x", "Bad_Name,kind=empty", "d,kind=host,source=/x,readOnly=maybe"}
	for _, v := range bad {
		if _, err := parseVolumeFlag(v); err == nil {
			t.Errorf("--volume %q accepted", v)
		}
	}
	if _, err := parseMountFlag("volume=data,target=/data"); err != nil {
		t.Error(err)
	}
	for _, m := range []string{"volume=data", "target=/x", "volume=data,target=rel", "volume=data,target=/x,extra=1", "volume=BAD,target=/x"} {
		if _, err := parseMountFlag(m); err == nil {
			t.Errorf("--mount %q accepted", m)
		}
	}
	for _, s := range []string{"mode=remove,@rkt/default-blacklist", "mode=retain,errno=ENOSYS,read,write"} {
		if _, err := parseSeccompFlag(s); err != nil {
			t.Errorf("--seccomp %q: %v", s, err)
		}
	}
	for _, s := range []string{"mode=remove", "read,write", "mode=keep,read", "mode=remove,errno=EWHAT,read", "mode=remove,@nope/set"} {
		if _, err := parseSeccompFlag(s); err == nil {
			t.Errorf("--seccomp %q accepted", s)
		}
	}
}

func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"data,kind=host,source=/srv,readOnly=true", "volume=data,target=/data", "mode=retain,errno=ENOSYS,read", "mode=remove,@rkt/default-blacklist", ",,=,", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parseVolumeFlag(s); err == nil && v.Kind == "host" && !strings.HasPrefix(v.Source, "/") {
			t.Fatalf("host volume with relative source accepted: %q", s)
		}
		if m, err := parseMountFlag(s); err == nil && !strings.HasPrefix(m.Path, "/") {
			t.Fatalf("relative mount target accepted: %q", s)
		}
		if sc, err := parseSeccompFlag(s); err == nil {
			iso, err := sc.Isolator()
			if err != nil {
				t.Fatalf("accepted --seccomp %q makes no isolator: %v", s, err)
			}
			// Decoded as stage1 reads it from the pod manifest.
			b, err := json.Marshal(types.Isolators{*iso})
			if err != nil {
				t.Fatalf("accepted --seccomp %q does not encode: %v", s, err)
			}
			var isos types.Isolators
			if err := json.Unmarshal(b, &isos); err != nil {
				t.Fatalf("accepted --seccomp %q does not decode: %v", s, err)
			}
			if _, err := stage1.SeccompSpec(isos); err != nil {
				t.Fatalf("accepted --seccomp %q does not build a filter: %v", s, err)
			}
		}
	})
}
