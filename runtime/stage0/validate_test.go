package stage0

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

func TestConfigValidate(t *testing.T) {
	one := []App{{Image: "img"}}
	for _, c := range []struct {
		cfg  Config
		want string // "" for valid, else a part of the error
	}{
		{Config{Apps: one}, ""},
		{Config{Apps: one, Memory: "16M", CPU: "500m", CapsRetain: []string{"kill", "CAP_SYS_ADMIN"}}, ""},
		{Config{}, "no image"},
		{Config{Apps: []App{{Image: "a"}, {Image: "b"}}, Interactive: true}, "--interactive"},
		{Config{Apps: one, CPU: "-1"}, "--cpu=-1"},
		{Config{Apps: one, CPU: "0"}, "--cpu=0"},
		{Config{Apps: []App{{Image: "img", Memory: "-5M"}}}, "--memory=-5M"},
		{Config{Apps: one, Memory: "0"}, "--memory=0"},
		{Config{Apps: one, Memory: "16m"}, "--memory=16m"}, // milli-bytes
		{Config{Apps: one, Memory: "lots"}, "--memory=lots"},
		{Config{Apps: []App{{Image: "img", CapsRetain: []string{"CAP_NOPE"}}}}, "CAP_NOPE"},
		{Config{Apps: one, CapsRemove: []string{"CAP_BOGUS"}}, "CAP_BOGUS"},
		{Config{Apps: []App{{Image: "img", CapsRetain: []string{"kill"}, CapsRemove: []string{"chown"}}}}, "mutually exclusive"},
		{Config{Apps: one, Seccomp: &Seccomp{Mode: "remove", Set: []string{"@nope/set"}}}, "@nope/set"},
		{Config{Apps: one, Seccomp: &Seccomp{Mode: "remove", Errno: "EWHAT", Set: []string{"read"}}}, "EWHAT"},
		{Config{Apps: one, Volumes: []types.Volume{{Name: "a", Kind: "empty"}, {Name: "a", Kind: "empty"}}}, "--volume a given twice"},
		{Config{Apps: one, Volumes: []types.Volume{{Name: "a", Kind: "host", Source: "rel"}}}, "rel"},
		{Config{Apps: one, Volumes: []types.Volume{{Name: "a", Kind: "nfs"}}}, "nfs"},
		{Config{Apps: one, Network: Network{Net: []string{"host", "default"}}}, "host"},
		{Config{Apps: one, Env: []string{"NOEQUALS"}}, "NOEQUALS"},
		{Config{Apps: one, Network: Network{DNS: []string{"host"}, DNSSearch: []string{"example.com"}}}, "--dns=host"},
		{Config{Apps: []App{{Image: "img", Name: "Bad_Name"}}}, "Bad_Name"},
		{Config{Apps: []App{{Image: "img", WorkingDir: "rel"}}}, "rel"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: err %v, want one naming %q", c.cfg, err, c.want)
		}
	}
}

func TestUnknownSyscalls(t *testing.T) {
	if _, checked := knownSyscall("read"); !checked {
		t.Skip("built without libseccomp (-tags seccomp): syscall names are not checked")
	}
	for _, mode := range []string{"retain", "remove"} {
		cfg := Config{Apps: []App{{Image: "img", Seccomp: &Seccomp{Mode: mode, Set: []string{"read", "nosuchsyscall"}}}}}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"nosuchsyscall"`) {
			t.Errorf("mode=%s: %v, want an error naming the syscall", mode, err)
		}
	}
	// Names of other architectures' syscalls are known (the default filter lists some).
	cfg := Config{Apps: []App{{Image: "img", Seccomp: &Seccomp{Mode: "remove", Set: []string{"vm86", "@rkt/default-blacklist"}}}}}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestCheckIsolators(t *testing.T) {
	mem, _ := types.NewResourceMemoryIsolator("1k", "1k")
	cpu, _ := types.NewResourceCPUIsolator("0", "0")
	caps, _ := types.NewLinuxCapabilitiesRetainSet("CAP_NOPE")
	capsIso, _ := caps.AsIsolator()
	ok, _ := types.NewLinuxCapabilitiesRevokeSet("CAP_KILL")
	okIso, _ := ok.AsIsolator()
	for _, c := range []struct {
		isos types.Isolators
		want string
	}{
		{types.Isolators{*okIso}, ""},
		{types.Isolators{mem.AsIsolator()}, "memory limit 1k"},
		{types.Isolators{cpu.AsIsolator()}, "cpu limit 0"},
		{types.Isolators{*capsIso}, "CAP_NOPE"},
	} {
		err := checkIsolators(c.isos)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: err %v, want %q", c.isos[0].Name, err, c.want)
		}
	}
}

func TestCheckUUIDFile(t *testing.T) {
	dir := t.TempDir()
	if err := checkUUIDFile(filepath.Join(dir, "uuid")); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the check left %v", ents)
	}
	for _, bad := range []string{filepath.Join(dir, "no/such/dir/uuid"), dir, filepath.Join(dir, "file/uuid")} {
		os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
		if err := checkUUIDFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v, want an error naming it", bad, err)
		}
	}
}
