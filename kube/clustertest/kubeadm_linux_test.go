package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	fct "github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/internal/testenv"
)

// web is WebDeployment behind a ClusterIP Service.
const web = WebDeployment + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

// client is a pod on a given node to reach the Service from (agnhost's netexec, whose
// /dial makes the request from inside the pod with Go's resolver), and to attach to (a
// shell that echoes what it reads on stdin).
func client(node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: %[2]s/e2e-test-images/agnhost:%[3]s
    args: [netexec, --http-port=8080]
  - name: echo
    image: %[2]s/e2e-test-images/agnhost:%[3]s
    command: [sh, -c, 'echo client up; while read l; do echo "got: $l"; done; sleep 3600']
    stdin: true
`, node, RegistryAddr, AgnhostTag)
}

// dial asks the client's netexec to GET /hostname from host:80 and returns the answer. The
// request reaches netexec through the API server's pod proxy (kube-apiserver on node-1, the
// client on node-2: over flannel).
func (c *Cluster) dial(host string) (string, error) {
	out, err := c.Kubectl("", "get", "--raw",
		"/api/v1/namespaces/default/pods/client:8080/proxy/dial?request=hostname&protocol=http&host="+host+"&port=80&tries=1")
	if err != nil {
		return "", err
	}
	var r struct{ Responses, Errors []string }
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return "", fmt.Errorf("netexec /dial: %w: %s", err, out)
	}
	if len(r.Responses) != 1 {
		return "", fmt.Errorf("netexec /dial %s: %s", host, out)
	}
	return r.Responses[0], nil
}

type podInfo struct {
	Metadata struct{ Name, UID string }
	Spec     struct{ NodeName string }
	Status   struct {
		PodIP             string
		ContainerStatuses []struct {
			ContainerID  string
			RestartCount int
		}
	}
}

func (c *Cluster) pods(t *testing.T, selector string) []podInfo {
	t.Helper()
	var list struct{ Items []podInfo }
	if err := json.Unmarshal([]byte(must(t, c, "", "get", "pods", "-l", selector, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// must runs kubectl, failing t (the running test or subtest) on error.
func must(t *testing.T, c *Cluster, stdin string, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKubeadmCluster(t *testing.T) {
	c := New(t)
	c.PushAgnhost(t)
	n1, n2 := c.AddNode(), c.AddNode()
	start := time.Now()
	c.Init(n1)
	c.StartFlannelOn(n1)
	// One control-plane node of two: it runs workloads too, as kubeadm's guide says to
	// allow on small clusters.
	c.MustKubectl("", "taint", "nodes", n1.Name, "node-role.kubernetes.io/control-plane-")
	c.Join(n2)
	c.StartFlannelOn(n2)
	c.WaitNodesReady(t, 3*time.Minute)
	c.MustKubectl("", "-n", "kube-system", "wait", "--for=condition=Ready", "pod", "--all", "--timeout=4m")
	t.Logf("two nodes Ready, kube-system's pods Ready, %s after kubeadm init started", time.Since(start).Round(time.Second))
	t.Log(c.MustKubectl("", "get", "nodes", "-o", "wide"))
	t.Log(c.MustKubectl("", "get", "pods", "-A", "-o", "wide"))

	// The control plane's static pods are rkt pods on node-1.
	out := n1.MustExec(filepath.Join(c.Cairn, "rkt"), "list", "--no-legend")
	for _, want := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		if !strings.Contains(out, want) {
			t.Errorf("rkt list on %s lacks %s:\n%s", n1.Name, want, out)
		}
	}
	vethsBefore := [2]int{countVeths(t, n1), countVeths(t, n2)}

	c.MustKubectl(web, "apply", "-f", "-")
	c.MustKubectl("", "rollout", "status", "deployment/web", "--timeout=3m")
	pods := c.pods(t, "app=web")
	if len(pods) != 2 || pods[0].Spec.NodeName == pods[1].Spec.NodeName {
		t.Fatalf("web's pods are not one per node: %+v", pods)
	}

	c.MustKubectl(client(n2.Name), "apply", "-f", "-")
	c.MustKubectl("", "wait", "--for=condition=Ready", "pod/client", "--timeout=2m")
	t.Run("service", func(t *testing.T) {
		// From node-2's client, the ClusterIP (by name, through CoreDNS) reaches both
		// pods, one of them on node-1 over flannel.
		seen := map[string]bool{}
		fct.Eventually(t, 60*time.Second, "both pods answer through the Service", func() error {
			name, err := c.dial("web.default.svc.cluster.local")
			if err != nil {
				return err
			}
			seen[name] = true
			for _, p := range pods {
				if !seen[p.Metadata.Name] {
					return fmt.Errorf("answers from %v", seen)
				}
			}
			return nil
		})
	})

	t.Run("logs", func(t *testing.T) {
		out := must(t, c, "", "logs", pods[0].Metadata.Name)
		if !strings.Contains(out, "Started HTTP server on port 8080") {
			t.Errorf("kubectl logs %s:\n%s", pods[0].Metadata.Name, out)
		}
		out = must(t, c, "", "logs", "client", "-c", "echo")
		if !strings.Contains(out, "client up") {
			t.Errorf("kubectl logs client:\n%s", out)
		}
	})

	t.Run("exec-it", func(t *testing.T) {
		// script(1) gives kubectl a terminal: -t then gives the command one.
		cmd := c.KubectlCmd("exec", "-it", pods[1].Metadata.Name, "--", "sh", "-c", "tty; echo in-tty")
		script := exec.Command("script", "-qec", shellJoin(cmd.Args), "/dev/null")
		script.Stdin = strings.NewReader("")
		b, err := script.CombinedOutput()
		if err != nil || !regexp.MustCompile(`/dev/pts/\d+\r?\nin-tty`).Match(b) {
			t.Errorf("kubectl exec -it: %v\n%s", err, b)
		}
	})

	t.Run("attach", func(t *testing.T) {
		cmd := c.KubectlCmd("attach", "-i", "client", "-c", "echo")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		var buf testenv.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The line is sent once kubectl is attached (it says so), and again each second:
		// what is written before the attach is established has nowhere to go.
		go func() {
			for range 30 {
				if strings.Contains(buf.String(), "If you don't see a command prompt") {
					if _, err := io.WriteString(stdin, "hello\n"); err != nil {
						return
					}
				}
				time.Sleep(time.Second)
			}
		}()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(buf.String(), "got: hello") {
			select {
			case <-deadline:
				cmd.Process.Kill()
				<-done
				t.Fatalf("kubectl attach -i client: no echo:\n%s", buf.String())
			case <-done:
				if !strings.Contains(buf.String(), "got: hello") {
					t.Fatalf("kubectl attach -i client ended:\n%s", buf.String())
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
		cmd.Process.Kill()
		<-done
	})

	t.Run("port-forward", func(t *testing.T) {
		cmd := c.KubectlCmd("port-forward", "pod/"+pods[0].Metadata.Name, "18080:8080")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		fct.Eventually(t, 30*time.Second, "port-forward answers", func() error {
			body, err := getInNS(c.Net.UnderNS, "127.0.0.1:18080", "/hostname")
			if err != nil {
				return fmt.Errorf("%w (kubectl: %s)", err, buf.String())
			}
			if body != pods[0].Metadata.Name {
				return fmt.Errorf("/hostname = %q", body)
			}
			return nil
		})
	})

	t.Run("cp", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "in")
		want := strings.Repeat("cairn\n", 10000)
		if err := os.WriteFile(local, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		must(t, c, "", "cp", local, pods[1].Metadata.Name+":/tmp/in")
		back := filepath.Join(t.TempDir(), "back")
		must(t, c, "", "cp", pods[1].Metadata.Name+":/tmp/in", back)
		if b, err := os.ReadFile(back); err != nil || string(b) != want {
			t.Errorf("kubectl cp there and back: %d bytes, %v", len(b), err)
		}
	})

	t.Run("restart", func(t *testing.T) {
		// rktlet and kubelet restart on both nodes; the pods go on: same containers, no
		// restarts, the Service answers.
		before := map[string]string{}
		for _, n := range []*Node{n1, n2} {
			ids, err := sandboxes(n.Socket)
			if err != nil {
				t.Fatal(err)
			}
			maps.Copy(before, ids)
		}
		restarted := time.Now()
		for _, n := range []*Node{n1, n2} {
			n.RestartRuntime()
			n.RestartKubelet()
		}
		// Each kubelet is back once it renews its node's Lease; a pod sync later, one that
		// found a pod broken would have replaced its sandbox.
		for _, n := range []*Node{n1, n2} {
			fct.Eventually(t, 2*time.Minute, n.Name+"'s kubelet renews its Lease", func() error {
				out, err := c.Kubectl("", "-n", "kube-node-lease", "get", "lease", n.Name, "-o", "jsonpath={.spec.renewTime}")
				if err != nil {
					return err
				}
				renewed, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
				if err != nil || !renewed.After(restarted) {
					return fmt.Errorf("renewed %q (%v)", out, err)
				}
				return nil
			})
		}
		time.Sleep(5 * time.Second)
		c.WaitNodesReady(t, 2*time.Minute)
		for _, n := range []*Node{n1, n2} {
			ids, err := sandboxes(n.Socket)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pods {
				if id, ok := ids[p.Metadata.UID]; ok && id != before[p.Metadata.UID] {
					t.Errorf("%s: sandbox %s replaced by %s after the restarts", p.Metadata.Name, before[p.Metadata.UID], id)
				}
			}
		}
		must(t, c, "", "rollout", "status", "deployment/web", "--timeout=2m")
		after := c.pods(t, "app=web")
		for i, p := range after {
			if i >= len(pods) || p.Metadata.UID != pods[i].Metadata.UID || p.Status.ContainerStatuses[0].ContainerID != pods[i].Status.ContainerStatuses[0].ContainerID ||
				p.Status.ContainerStatuses[0].RestartCount != 0 {
				t.Errorf("after restarting rktlet and kubelet: %+v, before %+v", after, pods)
			}
		}
		// kubelet knows its pods again once it has synced them: until then an exec
		// finds "pod does not exist".
		fct.Eventually(t, 60*time.Second, "the Service after the restarts", func() error {
			_, err := c.dial("web")
			return err
		})
	})

	t.Run("drain", func(t *testing.T) {
		must(t, c, "", "drain", n2.Name, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=2m")
		must(t, c, "", "rollout", "status", "deployment/web", "--timeout=2m")
		for _, p := range c.pods(t, "app=web") {
			if p.Spec.NodeName == n2.Name {
				t.Errorf("%s still on drained %s", p.Metadata.Name, n2.Name)
			}
		}
		must(t, c, "", "uncordon", n2.Name)
	})

	t.Run("delete", func(t *testing.T) {
		all := slices.Concat(pods, c.pods(t, "app=web"))
		must(t, c, "", "delete", "deployment/web", "service/web", "--wait=true", "--timeout=2m")
		must(t, c, "", "delete", "pod/client", "--ignore-not-found", "--wait=true", "--timeout=2m")
		for i, n := range []*Node{n1, n2} {
			fct.Eventually(t, 60*time.Second, n.Name+" left nothing of the deleted pods", func() error {
				return n.leftovers(t, all, vethsBefore[i])
			})
		}
	})
}

// leftovers reports what a node still has of the pods: their sandboxes, cgroups, mounts,
// address reservations or veths beyond want.
func (n *Node) leftovers(t *testing.T, pods []podInfo, veths int) error {
	var errs []string
	ids, err := sandboxes(n.Socket)
	if err != nil {
		return err
	}
	mounts, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", n.holder.Process.Pid))
	for _, p := range pods {
		uid := p.Metadata.UID
		if id, ok := ids[uid]; ok {
			errs = append(errs, "sandbox "+id+" of "+p.Metadata.Name)
		}
		if bytes.Contains(mounts, []byte(uid)) {
			errs = append(errs, "mounts of "+p.Metadata.Name)
		}
		for _, h := range hierarchies() {
			if m, _ := filepath.Glob(filepath.Join(h, n.CgroupRoot, "kubepods*", "*pod"+uid)); len(m) > 0 {
				errs = append(errs, "cgroup "+m[0])
			}
			if m, _ := filepath.Glob(filepath.Join(h, n.CgroupRoot, "kubepods*", "*", "*pod"+uid)); len(m) > 0 {
				errs = append(errs, "cgroup "+m[0])
			}
		}
		if p.Spec.NodeName == n.Name && p.Status.PodIP != "" {
			if _, err := os.Stat(filepath.Join(n.Dir, "var/lib/cni/networks/cbr0", p.Status.PodIP)); err == nil {
				errs = append(errs, "address "+p.Status.PodIP+" still reserved")
			}
		}
	}
	if got := countVeths(t, n); got > veths {
		errs = append(errs, fmt.Sprintf("%d veths, %d before", got, veths))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func countVeths(t *testing.T, n *Node) int {
	out, err := n.Exec("ip", "-o", "link", "show", "type", "veth")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(out, "\n")
}

// getInNS GETs a path from an address, connecting from inside a network namespace.
func getInNS(ns, addr, path string) (string, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return fct.DialInNS(ctx, ns, addr) }}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// shellJoin quotes argv for sh -c.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
