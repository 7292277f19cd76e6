package podapi

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func addRequest() *AddRequest {
	mode, id := "0755", 0
	return &AddRequest{
		App: schema.RuntimeApp{Name: "web", Image: schema.RuntimeImage{ID: *types.NewHashSHA512([]byte("web"))}, App: &types.App{Exec: types.Exec{"/bin/sh", "-c", "echo hi"}, User: "0", Group: "0"},
			Mounts: []schema.Mount{{Volume: "data", Path: "/data"}}},
		Image:   Image{Name: "example.com/web", ImageID: "sha512-abc", Layers: []string{"/var/lib/rkt/cas/tree/sha512-abc/rootfs"}},
		Volumes: []types.Volume{{Name: "data", Kind: "empty", Mode: &mode, UID: &id, GID: &id}},
		Stdin:   StdinStream,
		LogPath: "/var/log/pods/web.log",
	}
}

// withLinux is an add request with every Linux setting, changed by fs.
func withLinux(fs ...func(*Linux)) *Request {
	a := addRequest()
	yes, score := true, -500
	a.Linux = &Linux{
		Capabilities:        &[]string{"CAP_CHOWN", "CAP_NET_RAW"},
		AmbientCapabilities: []string{"CAP_NET_RAW"},
		NoNewPrivileges:     &yes,
		Seccomp:             SeccompProfile,
		SeccompProfile:      []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`),
		MaskedPaths:         &[]string{"/proc/kcore"},
		ReadonlyPaths:       &[]string{},
		Devices:             []Device{{HostPath: "/dev/null", Path: "/dev/xnull", Permissions: "rw"}},
		Propagation:         map[string]string{"/data": PropagationSlave},
		HostPID:             true,
		OOMScoreAdj:         &score,
		Resources:           &Resources{CPUShares: 2, CPUQuota: 20000, CPUPeriod: 100000, MemoryLimit: 16 << 20, MemorySwap: -1, CPUSetCPUs: "0", CPUSetMems: "0", PidsLimit: 100},
	}
	for _, f := range fs {
		f(a.Linux)
	}
	return &Request{Method: MethodAdd, Add: a}
}

func TestRequestRoundTrip(t *testing.T) {
	d := 3 * time.Second
	for _, req := range []*Request{
		{Method: MethodAdd, Add: addRequest()},
		{Method: MethodStart, App: "web"},
		{Method: MethodStop, App: "web", Timeout: &d},
		{Method: MethodRemove, App: "web"},
		{Method: MethodAttach, App: "web", Stdin: true, Stdout: true, CloseStdin: true},
		{Method: MethodResize, App: "web", Rows: 24, Cols: 80},
		{Method: MethodReopenLogs},
		{Method: MethodReopenLogs, App: "web"},
		{Method: MethodStatus},
		{Method: MethodUpdate, App: "web", Resources: &Resources{CPUShares: 512, MemoryLimit: 64 << 20, CPUSetCPUs: "0,1"}},
		withLinux(),
	} {
		t.Run(string(req.Method), func(t *testing.T) {
			line, err := EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(string(line), "\n") != 1 || !strings.HasSuffix(string(line), "\n") {
				t.Fatalf("not one line: %q", line)
			}
			got, err := ReadRequest(bufio.NewReader(strings.NewReader(string(line))))
			if err != nil {
				t.Fatal(err)
			}
			again, _ := EncodeRequest(got)
			if string(again) != string(line) {
				t.Fatalf("round trip:\n%s\n%s", line, again)
			}
		})
	}
}

func TestRequestRefused(t *testing.T) {
	neg := -time.Second
	withAdd := func(f func(a *AddRequest)) *Request {
		a := addRequest()
		f(a)
		return &Request{Method: MethodAdd, Add: a}
	}
	for name, req := range map[string]*Request{
		"unknown method":           {Method: "exec", App: "web"},
		"no method":                {},
		"start without app":        {Method: MethodStart},
		"app is a path":            {Method: MethodStart, App: "../../etc"},
		"app with a slash":         {Method: MethodStop, App: "a/b"},
		"upper-case app":           {Method: MethodRemove, App: "Web"},
		"negative timeout":         {Method: MethodStop, App: "web", Timeout: &neg},
		"attach to nothing":        {Method: MethodAttach, App: "web"},
		"zero window":              {Method: MethodResize, App: "web", Rows: 0, Cols: 80},
		"add without app":          {Method: MethodAdd},
		"add with app field":       {Method: MethodAdd, App: "web", Add: addRequest()},
		"start with add":           {Method: MethodStart, App: "web", Add: addRequest()},
		"no command":               withAdd(func(a *AddRequest) { a.App.App.Exec = nil }),
		"no app section":           withAdd(func(a *AddRequest) { a.App.App = nil }),
		"empty command":            withAdd(func(a *AddRequest) { a.App.App.Exec = types.Exec{""} }),
		"bad app name":             withAdd(func(a *AddRequest) { a.App.Name = "-x" }),
		"no layers":                withAdd(func(a *AddRequest) { a.Image.Layers = nil }),
		"relative layer":           withAdd(func(a *AddRequest) { a.Image.Layers = []string{"tree"} }),
		"layer with colon":         withAdd(func(a *AddRequest) { a.Image.Layers = []string{"/a:/b"} }),
		"layer with dots":          withAdd(func(a *AddRequest) { a.Image.Layers = []string{"/a/../../b"} }),
		"stdin mode":               withAdd(func(a *AddRequest) { a.Stdin = "file" }),
		"relative log":             withAdd(func(a *AddRequest) { a.LogPath = "web.log" }),
		"volume kind":              withAdd(func(a *AddRequest) { a.Volumes[0].Kind = "nfs" }),
		"volume twice":             withAdd(func(a *AddRequest) { a.Volumes = append(a.Volumes, a.Volumes[0]) }),
		"host volume relative":     withAdd(func(a *AddRequest) { a.Volumes[0] = types.Volume{Name: "h", Kind: "host", Source: "tmp"} }),
		"volume inside a mount":    withAdd(func(a *AddRequest) { a.App.Mounts[0].AppVolume = &a.Volumes[0] }),
		"mount path relative":      withAdd(func(a *AddRequest) { a.App.Mounts[0].Path = "data" }),
		"update without resources": {Method: MethodUpdate, App: "web"},
		"resources on start":       {Method: MethodStart, App: "web", Resources: &Resources{}},
		"negative memory":          {Method: MethodUpdate, App: "web", Resources: &Resources{MemoryLimit: -1}},
		"cpu period":               {Method: MethodUpdate, App: "web", Resources: &Resources{CPUPeriod: 10}},
		"cpuset":                   {Method: MethodUpdate, App: "web", Resources: &Resources{CPUSetCPUs: "0-"}},
		"unified path":             {Method: MethodUpdate, App: "web", Resources: &Resources{Unified: map[string]string{"../memory.max": "1"}}},
		"capability name":          withLinux(func(l *Linux) { l.Capabilities = &[]string{"chown"} }),
		"ambient name":             withLinux(func(l *Linux) { l.AmbientCapabilities = []string{"CAP_x"} }),
		"seccomp mode":             withLinux(func(l *Linux) { l.Seccomp = "strict" }),
		"profile without mode":     withLinux(func(l *Linux) { l.Seccomp = SeccompDefault }),
		"profile not an object":    withLinux(func(l *Linux) { l.SeccompProfile = []byte(`[1]`) }),
		"masked relative":          withLinux(func(l *Linux) { l.MaskedPaths = &[]string{"proc/kcore"} }),
		"device host relative":     withLinux(func(l *Linux) { l.Devices[0].HostPath = "dev/null" }),
		"device permissions":       withLinux(func(l *Linux) { l.Devices[0].Permissions = "x" }),
		"propagation mode":         withLinux(func(l *Linux) { l.Propagation = map[string]string{"/d": "shared"} }),
		"propagation path":         withLinux(func(l *Linux) { l.Propagation = map[string]string{"/d/../e": "rslave"} }),
		"oom score":                withLinux(func(l *Linux) { v := -1001; l.OOMScoreAdj = &v }),
		"env without =":            withLinux(func(l *Linux) { l.Env = []string{"1-data"} }),
		"env without a name":       withLinux(func(l *Linux) { l.Env = []string{"=x"} }),
		"env with NUL":             withLinux(func(l *Linux) { l.Env = []string{"1-data=a\x00b"} }),
	} {
		t.Run(name, func(t *testing.T) {
			if err := req.Validate(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate: %v, want ErrInvalid", err)
			}
			if _, err := EncodeRequest(req); !errors.Is(err, ErrInvalid) {
				t.Fatalf("EncodeRequest: %v, want ErrInvalid", err)
			}
		})
	}
}

// Bytes from a local client that the supervisor must refuse without trusting them.
func TestDecodeHostile(t *testing.T) {
	for name, line := range map[string]string{
		"not json":          `hello`,
		"array":             `[1,2]`,
		"wrong type":        `{"method":7}`,
		"app not a name":    `{"method":"add","add":{"app":{"name":"A B","app":{"exec":["/x"],"user":"0","group":"0"}},"image":{"layers":["/l"]}}}`,
		"exec not absolute": `{"method":"add","add":{"app":{"name":"a","app":{"exec":["x"],"user":"0","group":"0"}},"image":{"layers":["/l"]}}}`,
		"isolator garbage":  `{"method":"add","add":{"app":{"name":"a","app":{"exec":["/x"],"user":"0","group":"0","isolators":[{"name":"resource/memory","value":{"limit":"lots"}}]}},"image":{"layers":["/l"]}}}`,
		"nul in path":       `{"method":"add","add":{"app":{"name":"a","app":{"exec":["/x"],"user":"0","group":"0"}},"image":{"layers":["/l\u0000"]}}}`,
		"huge rows":         `{"method":"resize","app":"a","rows":70000,"cols":1}`,
		"trailing garbage":  `{"method":"status"} x`,
	} {
		t.Run(name, func(t *testing.T) {
			if req, err := DecodeRequest([]byte(line)); err == nil {
				t.Fatalf("accepted %+v", req)
			}
		})
	}
	long := `{"method":"status","app":"` + strings.Repeat("a", MaxLine) + `"}` + "\n"
	if _, err := ReadRequest(bufio.NewReaderSize(strings.NewReader(long), 4096)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("over-long line: %v", err)
	}
	if _, err := ReadRequest(bufio.NewReader(strings.NewReader(`{"method":"status"}`))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unterminated line: %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	for _, sentinel := range []error{ErrNotFound, ErrExists, ErrInvalid, ErrState} {
		rep := ErrorReply(errors.Join(errors.New("app web"), sentinel))
		var sb strings.Builder
		if err := WriteReply(&sb, rep); err != nil {
			t.Fatal(err)
		}
		got, err := ReadReply(bufio.NewReader(strings.NewReader(sb.String())))
		if err != nil {
			t.Fatal(err)
		}
		if err := got.Err(); !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "app web") {
			t.Fatalf("%v: came back as %v", sentinel, err)
		}
	}
	if err := ErrorReply(errors.New("disk full")).Err(); err == nil || err.Error() != "disk full" {
		t.Fatalf("uncoded error: %v", err)
	}
	if err := (&Reply{App: &AppStatus{Name: "web"}}).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestAppStatusJSON(t *testing.T) {
	st := AppStatus{Name: "web", State: AppExited, ExitCode: 0, Reason: "Completed"}
	var sb strings.Builder
	if err := WriteReply(&sb, &Reply{App: &st}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sb.String(), "startedAt") {
		t.Fatalf("zero times written: %s", sb.String())
	}
	got, err := ReadReply(bufio.NewReader(strings.NewReader(sb.String())))
	if err != nil || !reflect.DeepEqual(*got.App, st) {
		t.Fatalf("%v %+v", err, got)
	}
}
