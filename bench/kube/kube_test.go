// Package kube benchmarks Kubernetes on rktlet against Kubernetes on Debian's containerd:
// the time from `kubectl apply` of a 10-replica Deployment to all its pods Ready, on a
// worker running rktlet and on a worker running containerd, in one kubeadm cluster
// (kube/clustertest), so that both share the control plane, the network and the image.
package kube

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-os/cairn/kube/clustertest"
)

const (
	replicas = 10
	rounds   = 5
)

// deployment is agnhost pausing, replicas times, on one node; without probes a pod is
// Ready once its container runs.
func deployment(name, node string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[3]s}
      terminationGracePeriodSeconds: 1
      containers:
      - name: pause
        image: %[4]s/e2e-test-images/agnhost:%[5]s
        args: [pause]
`, name, replicas, node, clustertest.RegistryAddr, clustertest.AgnhostTag)
}

// BenchmarkDeploymentReady applies the Deployment on each worker in turn (interleaved,
// after one warm-up round that pulls the image), times `kubectl apply` to `kubectl wait`
// seeing every replica Ready, deletes it and waits for its pods to be gone, and prints the
// medians and their ratio.
func BenchmarkDeploymentReady(b *testing.B) {
	c := clustertest.New(b)
	c.PushAgnhost(b)
	cp := c.AddNode()
	workers := []*clustertest.Node{c.AddNodeWith(clustertest.Rktlet), c.AddNodeWith(clustertest.Containerd)}
	c.Init(cp)
	c.StartFlannelOn(cp)
	for _, w := range workers {
		c.Join(w)
		c.StartFlannelOn(w)
	}
	c.WaitNodesReady(b, 3*time.Minute)
	times := make([][]time.Duration, len(workers))
	for i := range rounds + 1 {
		for j, w := range workers {
			d := run(b, c, w)
			if i > 0 {
				times[j] = append(times[j], d)
			}
		}
	}
	med := []time.Duration{median(times[0]), median(times[1])}
	b.Logf("kube-bench: kubectl apply of a %d-replica Deployment to all Ready, %d interleaved rounds each: rktlet median %.2f s, containerd %.2f s (rktlet/containerd %.2f×); rounds rktlet %v, containerd %v",
		replicas, rounds, med[0].Seconds(), med[1].Seconds(), float64(med[0])/float64(med[1]), times[0], times[1])
	b.ReportMetric(float64(med[0])/float64(med[1]), "rktlet/containerd")
}

// run times one Deployment on node w and removes it.
func run(b *testing.B, c *clustertest.Cluster, w *clustertest.Node) time.Duration {
	b.Helper()
	name := "bench-" + string(w.Runtime)
	start := time.Now()
	c.MustKubectl(deployment(name, w.Name), "apply", "-f", "-")
	c.MustKubectl("", "wait", "deployment/"+name, fmt.Sprintf("--for=jsonpath={.status.readyReplicas}=%d", replicas), "--timeout=5m")
	d := time.Since(start)
	c.MustKubectl("", "delete", "deployment/"+name, "--wait=true")
	c.MustKubectl("", "wait", "pod", "-l", "app="+name, "--for=delete", "--timeout=5m")
	return d
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
