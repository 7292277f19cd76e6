package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/e2e/fleettest"
	"github.com/cairn-os/cairn/e2e/kubenodes"
)

// The test's own deadline: kubeTimeout after the images are ready, or kubeCleanup before go
// test's deadline if that comes first, so that a stuck stage fails the test with the VMs'
// journals and the cluster torn down rather than go test killing the binary (README: -timeout
// 60m).
const (
	kubeTimeout = 45 * time.Minute
	kubeCleanup = 5 * time.Minute
)

// kubeDeadline is the test's deadline at now, given go test's (ok false: none).
func kubeDeadline(now, testDeadline time.Time, ok bool) time.Time {
	d := now.Add(kubeTimeout)
	if cut := testDeadline.Add(-kubeCleanup); ok && cut.Before(d) {
		d = cut
	}
	return d
}

// TestKubernetesNodes: two Cairn VMs with the Kubernetes extension join a kubeadm control
// plane (in a namespace of this machine), serve a Deployment through a NodePort to a client
// that tries the other VM when one fails, and take an OS update one at a time, each drained
// by locksmithd's kubernetes strategy under a PodDisruptionBudget, back with the extension
// of the new version (e2e/kubenodes, which cairn-demo runs too).
func TestKubernetesNodes(t *testing.T) {
	if os.Getenv("CAIRN_E2E_KUBE") != "1" {
		t.Skip("CAIRN_E2E_KUBE=1 runs it: two Kubernetes nodes in TCG guests and an update rolled through them take 8-9 minutes beyond the e2e images, which make test's budget for the e2e tier has no room for")
	}
	im := fleettest.Images(t)
	// Ended by cleanups, not defers: the VMs (started with ctx) must outlive the test's body
	// for the cleanups that read their journals.
	testDeadline, ok := t.Deadline()
	ctx, cancel := context.WithDeadline(context.Background(), kubeDeadline(time.Now(), testDeadline, ok))
	t.Cleanup(cancel)
	dir := t.TempDir()
	f, err := fleet.StartFleet(ctx, filepath.Join(dir, "fleet"), im)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	n := kubenodes.Start(t, ctx, f, im, kubenodes.Options{Dir: dir, Out: fleettest.Log(t)})
	n.Join(ctx)
	n.ServeWeb(ctx)
	a, err := n.AcrossHosts(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(a)
	if !a.Crossed() {
		t.Errorf("a NodePort sent no request to the other VM's pod")
	}
	n.Stages.Done("stage (a): join, Ready, Service answering")
	if t.Failed() {
		return
	}
	r := n.Update(ctx)
	n.Stages.Done("stage (b): versions, extensions and slots checked")
	for _, c := range r.Cordons {
		t.Log(c)
	}
	t.Logf("client through the NodePorts during the update: %s", r.Client)
	for _, c := range r.NoEndpoints {
		t.Log(c)
	}
	t.Logf("stages:\n%s", n.Stages.Report())
}

func TestKubeDeadline(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		deadline time.Time
		ok       bool
		want     time.Time
	}{
		{"no deadline", time.Time{}, false, now.Add(45 * time.Minute)},
		{"-timeout 60m", now.Add(60 * time.Minute), true, now.Add(45 * time.Minute)},
		{"-timeout 40m", now.Add(40 * time.Minute), true, now.Add(35 * time.Minute)},
		{"10 minutes left after the images", now.Add(10 * time.Minute), true, now.Add(5 * time.Minute)},
	} {
		if got := kubeDeadline(now, tc.deadline, tc.ok); !got.Equal(tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, got, tc.want)
		}
	}
}
