package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/stage0"
)

func parseRun(args ...string) (*stage0.Config, error) {
	var p podArgs
	err := p.parse(p.flagSet("run", true), args)
	return &p.cfg, err
}

// rkt run's command line, as rkt's documentation writes it, into the pod to prepare.
func TestParsePodArgs(t *testing.T) {
	yes, no := true, false
	logs, err := parseVolumeFlag("logs,kind=empty")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want stage0.Config
	}{
		{[]string{"example.com/worker", "example.com/syncer"},
			stage0.Config{Apps: []stage0.App{{Image: "example.com/worker"}, {Image: "example.com/syncer"}}}},
		{[]string{"docker://busybox", "--name=busybox1", "docker://busybox", "--name=busybox2"},
			stage0.Config{Apps: []stage0.App{{Image: "docker://busybox", Name: "busybox1"}, {Image: "docker://busybox", Name: "busybox2"}}}},
		{[]string{"example.com/worker", "--", "--loglevel", "verbose", "---", "example.com/syncer", "--", "--interval", "30s"},
			stage0.Config{Apps: []stage0.App{{Image: "example.com/worker", Args: []string{"--loglevel", "verbose"}},
				{Image: "example.com/syncer", Args: []string{"--interval", "30s"}}}}},
		{[]string{"example.com/worker", "--exec", "/bin/ov", "--", "--loglevel", "verbose", "---", "example.com/syncer", "--exec", "/bin/syncer2", "--", "--interval", "30s"},
			stage0.Config{Apps: []stage0.App{{Image: "example.com/worker", Exec: "/bin/ov", Args: []string{"--loglevel", "verbose"}},
				{Image: "example.com/syncer", Exec: "/bin/syncer2", Args: []string{"--interval", "30s"}}}}},
		// The last image's arguments run to the end; "--" and "---" between them are arguments
		// only where they cannot end them.
		{[]string{"img", "--", "a", "--", "b"}, stage0.Config{Apps: []stage0.App{{Image: "img", Args: []string{"a", "--", "b"}}}}},
		{[]string{"img", "---", "img2"}, stage0.Config{Apps: []stage0.App{{Image: "img"}, {Image: "img2"}}}},
		// Pod flags anywhere; isolator flags before an image are every app's defaults.
		{[]string{"--memory=64M", "img", "--memory=32M", "--net=host", "img2", "--cpu=1"},
			stage0.Config{Memory: "64M", Network: stage0.Network{Net: []string{"host"}},
				Apps: []stage0.App{{Image: "img", Memory: "32M"}, {Image: "img2", CPU: "1"}}}},
		{[]string{"--net", "img"}, stage0.Config{Network: stage0.Network{Net: []string{"default"}}, Apps: []stage0.App{{Image: "img"}}}},
		{[]string{"--set-env=A=1", "img", "--set-env=B=2", "--environment=C=3"},
			stage0.Config{Env: []string{"A=1"}, Apps: []stage0.App{{Image: "img", Env: []string{"B=2", "C=3"}}}}},
		{[]string{"--caps-retain=CAP_KILL,net_admin", "img", "--caps-remove", "CAP_CHOWN", "--mount", "volume=v,target=/v"},
			stage0.Config{CapsRetain: []string{"CAP_KILL", "net_admin"}, Apps: []stage0.App{{Image: "img", CapsRemove: []string{"CAP_CHOWN"},
				Mounts: []schema.Mount{{Volume: "v", Path: "/v"}}}}}},
		{[]string{"--hosts-entry", "198.51.100.0=host1,198.51.100.1=host2", "--hosts-entry", "198.51.100.0=host3", "--dns=8.8.8.8,8.8.4.4", "--dns", "1.1.1.1", "img"},
			stage0.Config{Network: stage0.Network{HostsEntries: []string{"198.51.100.0=host1", "198.51.100.1=host2", "198.51.100.0=host3"},
				DNS: []string{"8.8.8.8", "8.8.4.4", "1.1.1.1"}}, Apps: []stage0.App{{Image: "img"}}}},
		{[]string{"--inherit-env", "--set-env-file=/a", "--set-env-file", "/b", "--volume=logs,kind=empty", "--mount", "volume=logs,target=/var/log",
			"--readonly-rootfs", "--user-annotation=team=infra", "--user-label=tier=1", "img", "--readonly-rootfs=false",
			"--supplementary-gids=10,20", "--user-annotation", "owner=me", "--user-label=app=web", "img2", "--readonly-rootfs"},
			stage0.Config{InheritEnv: true, EnvFiles: []string{"/a", "/b"}, ReadOnlyRootFS: true,
				Volumes:         []types.Volume{logs},
				Mounts:          []schema.Mount{{Volume: "logs", Path: "/var/log"}},
				UserAnnotations: map[string]string{"team": "infra"}, UserLabels: map[string]string{"tier": "1"},
				Apps: []stage0.App{{Image: "img", ReadOnlyRootFS: &no, SupplementaryGIDs: []int{10, 20},
					UserAnnotations: map[string]string{"owner": "me"}, UserLabels: map[string]string{"app": "web"}},
					{Image: "img2", ReadOnlyRootFS: &yes}}}},
		{[]string{"img", "--seccomp=mode=retain,errno=ENOSYS,read,write"},
			stage0.Config{Apps: []stage0.App{{Image: "img", Seccomp: &stage0.Seccomp{Mode: "retain", Errno: "ENOSYS", Set: []string{"read", "write"}}}}}},
	} {
		got, err := parseRun(c.args...)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.args, *got, c.want)
		}
	}
}

func TestParsePodArgsErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no image"},
		{[]string{"--net=none"}, "no image"},
		{[]string{"--exec=/bin/true", "img"}, "--exec must follow an image"},
		{[]string{"--name=a", "img"}, "--name must follow an image"},
		{[]string{"--", "x"}, "image must come before"},
		{[]string{"img", "--", "a", "---", "--", "b"}, "second set of arguments"},
		{[]string{"img", "--no-such-flag"}, "no-such-flag"},
		{[]string{"img", "--mount=volume=v"}, "--mount"},
		{[]string{"--volume=v,kind=host,source=rel", "img"}, "--volume"},
		{[]string{"img", "--seccomp=mode=keep,read"}, "mode"},
		{[]string{"img", "--supplementary-gids=10,x"}, "--supplementary-gids"},
		{[]string{"--supplementary-gids=10", "img"}, "--supplementary-gids must follow an image"},
		{[]string{"img", "--user-label=nolabel"}, "--user-label"},
		{[]string{"img", "--readonly-rootfs=maybe"}, "--readonly-rootfs"},
	} {
		_, err := parseRun(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want one naming %q", c.args, err, c.want)
		}
	}
}
