package conformance

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
)

// TestCrictl is a crictl session against rktlet as a user types it: pull, images, runp,
// pods, create, start, ps, logs (and -f), exec, attach, port-forward, stats, inspect,
// stop, rm, rmi, each checked for what it prints.
func TestCrictl(t *testing.T) {
	testenv.SkipShort(t, "root")
	testenv.RequireRoot(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	testenv.RequireCommand(t, "go")
	testenv.RequireCommand(t, "iptables")
	for _, p := range []string{"ptp", "host-local", "portmap", "loopback"} {
		testenv.RequireFile(t, "/usr/lib/cni/"+p)
	}
	tools := testenv.Tool(t, "critools/build.sh") // crictl and critest
	t.Logf("%s", testenv.InPrivateHost(t, "TestCrictlInHost", innerEnv+"=1", toolsEnv+"="+tools))
}

// session runs crictl against one endpoint, each call with a deadline.
type session struct {
	t        *testing.T
	endpoint string
}

// run runs crictl and returns its stdout, failing the test unless it succeeds.
func (s session) run(args ...string) string {
	s.t.Helper()
	out, stderr, err := s.try(time.Minute, args...)
	if err != nil {
		s.t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// try runs crictl for at most d (killing it then, with no error: logs -f, attach) and
// returns its stdout, stderr and error.
func (s session) try(d time.Duration, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(os.Getenv(toolsEnv), "crictl"),
		append([]string{"--runtime-endpoint=" + s.endpoint, "--image-endpoint=" + s.endpoint, "--timeout=60s"}, args...)...)
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = nil
	}
	return out.String(), stderr.String(), err
}

func (s session) want(out, what string, re string) {
	s.t.Helper()
	if !regexp.MustCompile(re).MatchString(out) {
		s.t.Errorf("%s: want %s, got:\n%s", what, re, out)
	}
}

// writeJSON writes v as a JSON file in dir and returns its path.
func writeJSON(t *testing.T, dir, file string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCrictlInHost is the inner half of TestCrictl.
func TestCrictlInHost(t *testing.T) {
	if os.Getenv(innerEnv) != "1" {
		t.Skip("runs only inside TestCrictl's namespaces")
	}
	testenv.SetUpPrivateHost(t, "/var/lib/cni", "/run")
	reg := serveStandins(t)
	var mirrors []string
	for _, h := range standinHosts {
		mirrors = append(mirrors, h+"="+reg)
	}
	s := session{t: t, endpoint: startRktlet(t, mirrors)}
	dir := t.TempDir()
	const busybox, nginx = "registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	const ago = `(Less than a second|\d+ seconds?) ago`

	s.want(s.run("pull", busybox), "pull", `^Image is up to date for sha256:[0-9a-f]{64}\n$`)
	s.run("pull", nginx)
	s.want(s.run("images"), "images", `(?m)^IMAGE +TAG +IMAGE ID +SIZE\nregistry.k8s.io/e2e-test-images/busybox +1.29-2 +[0-9a-f]{13} +[0-9.]+MB`)

	podJSON := writeJSON(t, dir, "pod.json", map[string]any{
		"metadata":      map[string]any{"name": "session", "namespace": "default", "uid": "session-uid", "attempt": 1},
		"hostname":      "session",
		"log_directory": filepath.Join(dir, "logs"),
		"port_mappings": []map[string]any{{"protocol": 0, "container_port": 80, "host_port": 18080}},
		"linux":         map[string]any{},
	})
	// A sandbox's ID is its pod's UUID (rkt list shows it); crictl shows its first 13 characters.
	podID := strings.TrimSpace(s.run("runp", podJSON))
	s.want(podID, "runp", `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	s.want(s.run("pods"), "pods", `(?m)^`+podID[:13]+` +`+ago+` +Ready +session +default +1 +\(default\) *$`)

	ctrJSON := writeJSON(t, dir, "ticker.json", map[string]any{
		"metadata": map[string]any{"name": "ticker"},
		"image":    map[string]any{"image": busybox},
		"command":  []string{"sh", "-c", "echo hello; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done"},
		"log_path": "ticker.log",
	})
	ctrID := strings.TrimSpace(s.run("create", podID, ctrJSON, podJSON))
	s.want(ctrID, "create", `^[0-9a-f]{64}$`)
	// POD and NAMESPACE are unknown: crictl reads them from the labels kubelet gives containers.
	s.want(s.run("ps", "-a"), "ps -a (created)", `(?m)^`+ctrID[:13]+` +`+regexp.QuoteMeta(busybox)+` +`+ago+` +Created +ticker +0 +`+podID[:13]+` +unknown +unknown *$`)
	s.want(s.run("start", ctrID), "start", `^`+ctrID+`\n$`)
	s.want(s.run("ps"), "ps", `(?m)^`+ctrID[:13]+` .* Running +ticker +0 +`+podID[:13]+` +unknown +unknown *$`)

	time.Sleep(time.Second)
	s.want(s.run("logs", ctrID), "logs", `^hello\ntick 0\n`)
	// -f follows the log as it grows: after 3 s it has seen ticks written after it started.
	before := strings.Count(s.run("logs", ctrID), "\n")
	out, _, err := s.try(3*time.Second, "logs", "-f", ctrID)
	if err != nil || strings.Count(out, "\n") < before+3 {
		t.Errorf("logs -f: %v: %d lines, before %d:\n%s", err, strings.Count(out, "\n"), before, out)
	}

	s.want(s.run("exec", ctrID, "sh", "-c", "echo $((6*7)); hostname"), "exec", `^42\nsession\n$`)
	out, stderr, err := s.try(time.Minute, "exec", ctrID, "sh", "-c", "exit 3")
	if err == nil || !strings.Contains(stderr, "command terminated with exit code 3") {
		t.Errorf("exec exit 3: %v %s%s", err, out, stderr)
	}
	// -it through a terminal (script(1) gives crictl one): the command gets a tty.
	script := exec.Command("script", "-qec", strings.Join([]string{filepath.Join(os.Getenv(toolsEnv), "crictl"),
		"--runtime-endpoint=" + s.endpoint, "exec", "-it", ctrID, "sh", "-c", "'tty; echo in-tty'"}, " "), "/dev/null")
	if b, err := script.CombinedOutput(); err != nil || !regexp.MustCompile(`/dev/pts/\d+\r?\nin-tty`).Match(b) {
		t.Errorf("exec -it: %v %q", err, b)
	}
	// attach shows the container's output as it comes.
	out, stderr, err = s.try(3*time.Second, "attach", ctrID)
	if err != nil || !strings.Contains(out, "tick ") {
		t.Errorf("attach: %v: %q %s", err, out, stderr)
	}

	webJSON := writeJSON(t, dir, "web.json", map[string]any{
		"metadata": map[string]any{"name": "web"},
		"image":    map[string]any{"image": nginx},
		"log_path": "web.log",
	})
	webID := strings.TrimSpace(s.run("create", podID, webJSON, podJSON))
	s.run("start", webID)
	get := func(url string) (string, error) {
		var last error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			resp, err := http.Get(url) //nolint:noctx // a loopback request with the loop's deadline
			if err != nil {
				last = err
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), err
		}
		return "", last
	}
	if body, err := get("http://127.0.0.1:18080/"); err != nil || !strings.Contains(body, "nginx stand-in") {
		t.Errorf("port mapping 18080: %v %q", err, body)
	}
	pf := exec.Command(filepath.Join(os.Getenv(toolsEnv), "crictl"), "--runtime-endpoint="+s.endpoint, "port-forward", podID, "18081:80")
	var pfOut strings.Builder
	pf.Stdout, pf.Stderr = &pfOut, &pfOut
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	body, err := get("http://127.0.0.1:18081/")
	pf.Process.Kill()
	pf.Wait()
	if err != nil || !strings.Contains(body, "nginx stand-in") {
		t.Errorf("port-forward 18081:80: %v %q\n%s", err, body, pfOut.String())
	}

	// crictl stats clears the screen first.
	s.want(s.run("stats"), "stats", `(?m)CONTAINER +NAME +CPU % +MEM +DISK +INODES +SWAP\n(.*\n)*`+ctrID[:13]+` +ticker +[0-9.]+ +[0-9.]+[kMG]?B +[0-9.]+[kMG]?B +\d+`)
	var ins struct {
		Status struct {
			State string `json:"state"`
			Image struct {
				Image string `json:"image"`
			} `json:"image"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(s.run("inspect", ctrID)), &ins); err != nil || ins.Status.State != "CONTAINER_RUNNING" || ins.Status.Image.Image != busybox {
		t.Errorf("inspect: %v %+v", err, ins)
	}
	var insp struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(s.run("inspectp", podID)), &insp); err != nil || insp.Status.State != "SANDBOX_READY" || !strings.HasPrefix(insp.Status.Network.IP, "10.88.") {
		t.Errorf("inspectp: %v %+v", err, insp)
	}
	s.want(s.run("inspecti", busybox), "inspecti", `"repoTags": \[\s*"`+regexp.QuoteMeta(busybox)+`"`)

	s.want(s.run("stop", ctrID), "stop", `^`+ctrID+`\n$`)
	s.want(s.run("ps", "-a", "--name", "ticker"), "ps -a (exited)", `(?m)^`+ctrID[:13]+` .* Exited +ticker +0 +`+podID[:13]+` +unknown +unknown *$`)
	s.want(s.run("rm", ctrID), "rm", `^`+ctrID+`\n$`)
	s.want(s.run("stopp", podID), "stopp", `^Stopped sandbox `+podID+`\n$`)
	s.want(s.run("rmp", podID), "rmp", `^Removed sandbox `+podID+`\n$`)
	s.want(s.run("rmi", busybox), "rmi", `^Deleted: `+regexp.QuoteMeta(busybox)+`\n$`)
	s.want(s.run("images", "-q"), "images -q", `^sha256:[0-9a-f]{64}\n$`)
}
