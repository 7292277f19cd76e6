package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	fct "github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/kube/clustertest"
	"github.com/cairn-os/cairn/update-engine/locksmith"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// web is two replicas of agnhost's netexec, one per node, and a budget that keeps one of
// them available.
const web = clustertest.WebDeployment + "---\n" + clustertest.WebBudget

// restConfig loads a kubeconfig as locksmithd does, with connections opened inside the
// underlay namespace, where the API server is.
func restConfig(t *testing.T, c *clustertest.Cluster, path string) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	rc.Dial = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return fct.DialInNS(ctx, c.Net.UnderNS, addr)
	}
	return rc
}

// The kubernetes strategy against a kubeadm cluster of two nodes on Cairn's runtime, with
// locksmithd's ServiceAccount (rbac.yaml): leases raced for and taken over, a drain that a
// budget refuses given up and undone, a drain and "reboot" of node-2 that keeps the
// budget and holds node-1 off until node-2 is blessed good, and a rollback.
func TestKubernetesStrategy(t *testing.T) {
	c := clustertest.New(t)
	c.PushAgnhost(t)
	n1, n2 := c.AddNode(), c.AddNode()
	start := time.Now()
	c.Init(n1)
	c.StartFlannelOn(n1)
	c.MustKubectl("", "taint", "nodes", n1.Name, "node-role.kubernetes.io/control-plane-")
	c.Join(n2)
	c.StartFlannelOn(n2)
	c.WaitNodesReady(t, 3*time.Minute)
	t.Logf("two nodes Ready %s after kubeadm init started", time.Since(start).Round(time.Second))

	admin, err := kubernetes.NewForConfig(restConfig(t, c, c.Kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	locksmithd := filepath.Join(t.TempDir(), "locksmithd.conf")
	if err := os.WriteFile(locksmithd, []byte(c.LocksmithdKubeconfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	rc := restConfig(t, c, locksmithd)
	core, err := corev1client.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := coordinationv1client.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	strategy := func(node string, e *engine) *Strategy {
		return &Strategy{Core: core, Leases: leases, Node: node, Slots: e.Slots, DrainTimeout: 2 * time.Minute,
			Interval: time.Second, Log: log}
	}

	c.MustKubectl(web, "apply", "-f", "-")
	c.MustKubectl("", "rollout", "status", "deployment/web", "--timeout=3m")
	ctx := t.Context()
	webPods := func(t *testing.T, node string) []corev1.Pod {
		t.Helper()
		l, err := admin.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web",
			FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	if len(webPods(t, n1.Name)) != 1 || len(webPods(t, n2.Name)) != 1 {
		t.Fatalf("web's pods are not one per node")
	}
	holder := func(t *testing.T, name string) string {
		t.Helper()
		l, err := admin.CoordinationV1().Leases(DefaultNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return holderOf(l)
	}
	node := func(t *testing.T, name string) *corev1.Node {
		t.Helper()
		n, err := admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	events := func(t *testing.T, node, reason string) []corev1.Event {
		t.Helper()
		l, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.SelectorFromSet(fields.Set{"involvedObject.name": node, "reason": reason}).String()})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	// settled is node-2 given back: schedulable, no record, the lease free.
	settled := func(t *testing.T) {
		t.Helper()
		n := node(t, n2.Name)
		if n.Spec.Unschedulable || n.Annotations[RecordAnnotation] != "" || holder(t, "cairn-reboot-0") != "" {
			t.Fatalf("node-2 not given back: unschedulable %v, record %q, lease holder %q", n.Spec.Unschedulable,
				n.Annotations[RecordAnnotation], holder(t, "cairn-reboot-0"))
		}
	}

	t.Run("leases", func(t *testing.T) {
		// Racing nodes: with max 1 one wins, with max 2 two; the others find them held.
		for _, max := range []int{1, 2} {
			start := time.Now()
			var wg sync.WaitGroup
			var won atomic.Int32
			racers := make([]*Strategy, 4)
			for i := range racers {
				racers[i] = &Strategy{Core: core, Leases: leases, Node: fmt.Sprintf("racer-%d", i), LeaseName: fmt.Sprintf("race%d", max), Max: max, Log: log}
				wg.Go(func() {
					_, err := racers[i].acquire(ctx)
					switch {
					case err == nil:
						won.Add(1)
					case !errors.Is(err, ErrLeasesHeld):
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if int(won.Load()) != max {
				t.Fatalf("max %d: %d racers took a lease", max, won.Load())
			}
			t.Logf("max %d: four racers, %d won, in %s", max, max, time.Since(start).Round(time.Millisecond))
			holders := map[string]bool{}
			for i := range max {
				holders[holder(t, fmt.Sprintf("race%d-%d", max, i))] = true
			}
			if len(holders) != max || holders[""] {
				t.Fatalf("max %d: holders %v", max, holders)
			}
			for _, r := range racers {
				if err := r.release(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for i := range max {
				if h := holder(t, fmt.Sprintf("race%d-%d", max, i)); h != "" {
					t.Fatalf("race%d-%d still held by %s", max, i, h)
				}
			}
		}
		// A holder that stopped renewing loses the lease once it expires.
		ghost := &Strategy{Core: core, Leases: leases, Node: "ghost", LeaseName: "expiry", LeaseDuration: time.Second, Log: log}
		heir := &Strategy{Core: core, Leases: leases, Node: "heir", LeaseName: "expiry", Log: log}
		if _, err := ghost.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := heir.acquire(ctx); !errors.Is(err, ErrLeasesHeld) {
			t.Fatalf("took a live lease: %v", err)
		}
		time.Sleep(1500 * time.Millisecond)
		if _, err := heir.acquire(ctx); err != nil || holder(t, "expiry-0") != "heir" {
			t.Fatalf("expired lease not taken over: %v", err)
		}
		if err := ghost.release(ctx); err != nil || holder(t, "expiry-0") != "heir" {
			t.Fatalf("the old holder released its successor's lease: %v", err)
		}
		heir.release(ctx)
	})

	t.Run("drain-timeout", func(t *testing.T) {
		// A budget that no eviction can satisfy: the drain gives up, says so on the Node,
		// undoes the cordon and frees the lease; the pod stays where it is.
		c.MustKubectl("", "patch", "pdb", "web", "--type=merge", "-p", `{"spec":{"minAvailable":2}}`)
		before := webPods(t, n2.Name)
		s := strategy(n2.Name, &engine{sl: needReboot()})
		s.DrainTimeout = 15 * time.Second
		start := time.Now()
		err := s.Lock(ctx)
		if !errors.Is(err, locksmith.ErrGaveUp) || !strings.Contains(err.Error(), "default/"+before[0].Name) {
			t.Fatalf("Lock: %v", err)
		}
		t.Logf("gave up after %s: %v", time.Since(start).Round(time.Millisecond), err)
		settled(t)
		if evs := events(t, n2.Name, ReasonDrainTimedOut); len(evs) != 1 || evs[0].Type != corev1.EventTypeWarning ||
			!strings.Contains(evs[0].Message, before[0].Name) || !strings.Contains(evs[0].Message, "disruption budget") {
			t.Fatalf("events %+v", evs)
		}
		after := webPods(t, n2.Name)
		if len(after) != 1 || after[0].UID != before[0].UID || after[0].DeletionTimestamp != nil {
			t.Fatalf("the pod the budget protects was touched: %+v", after)
		}
		c.MustKubectl("", "patch", "pdb", "web", "--type=merge", "-p", `{"spec":{"minAvailable":1}}`)
	})

	t.Run("drain-reboot", func(t *testing.T) {
		fct.Eventually(t, time.Minute, "the budget allows one disruption", func() error {
			p, err := admin.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.ObservedGeneration != p.Generation || p.Status.DisruptionsAllowed != 1 {
				return fmt.Errorf("status %+v", p.Status)
			}
			return nil
		})
		evicted := webPods(t, n2.Name)[0]
		// What the pod went through, from a watch: the Eviction API marks it
		// DisruptionTarget (EvictionByEvictionAPI) before deleting it.
		w, err := admin.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + evicted.Name})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		byEviction := make(chan bool, 1)
		go func() {
			seen := false
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok {
					for _, cd := range p.Status.Conditions {
						seen = seen || cd.Type == corev1.DisruptionTarget && cd.Reason == "EvictionByEvictionAPI"
					}
				}
			}
			byEviction <- seen
		}()
		// The budget, from the outside: never both pods unavailable.
		pollCtx, stopPoll := context.WithCancel(ctx)
		var minAvailable atomic.Int32
		minAvailable.Store(2)
		var polls sync.WaitGroup
		polls.Go(func() {
			for pollCtx.Err() == nil {
				if d, err := admin.AppsV1().Deployments("default").Get(pollCtx, "web", metav1.GetOptions{}); err == nil {
					if n := d.Status.AvailableReplicas; n < minAvailable.Load() {
						minAvailable.Store(n)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		})

		e2 := &engine{sl: needReboot()}
		s2 := strategy(n2.Name, e2)
		s1 := strategy(n1.Name, &engine{sl: needReboot()})
		var node1Took atomic.Pointer[time.Time]
		var node1 sync.WaitGroup
		defer node1.Wait()
		node1Ctx, stopNode1 := context.WithCancel(ctx)
		defer stopNode1()
		rebooted := false
		d := &locksmith.Daemon{Strategy: updateconf.StrategyKubernetes, Locker: s2, Poll: time.Second, Log: log,
			NeedReboot: func(context.Context) (bool, error) { return true, nil },
			Reboot: func(context.Context) error {
				rebooted = true
				if h := holder(t, "cairn-reboot-0"); h != n2.Name {
					t.Errorf("rebooting without the lease: holder %q", h)
				}
				n := node(t, n2.Name)
				if rec, _, _ := recordOf(n); !n.Spec.Unschedulable || rec != (Record{Slot: "B", Version: "2.0.0", Cordoned: true}) {
					t.Errorf("rebooting: unschedulable %v, record %+v", n.Spec.Unschedulable, rec)
				}
				if p := webPods(t, n2.Name); len(p) != 0 {
					t.Errorf("rebooting with web's pods on the node: %v", p[0].Name)
				}
				// node-1 wants to reboot too: it waits for node-2's lease.
				node1.Go(func() {
					for node1Ctx.Err() == nil {
						if _, err := s1.acquire(node1Ctx); err == nil {
							now := time.Now()
							node1Took.Store(&now)
							return
						}
						time.Sleep(200 * time.Millisecond)
					}
				})
				e2.set(onTrial()) // the machine goes down and comes back on B
				return nil
			}}
		start := time.Now()
		if err := d.Run(ctx); err != nil || !rebooted {
			t.Fatalf("Run: %v, rebooted %v", err, rebooted)
		}
		t.Logf("drained and rebooted in %s", time.Since(start).Round(time.Millisecond))

		// After the boot: on trial, the node stays cordoned and keeps the lease.
		after := &locksmith.Daemon{Strategy: updateconf.StrategyKubernetes, Locker: s2, Poll: 500 * time.Millisecond, Log: log}
		released := make(chan error, 1)
		go func() { released <- after.ReleaseAfterBoot(ctx) }()
		time.Sleep(3 * time.Second)
		if !node(t, n2.Name).Spec.Unschedulable || holder(t, "cairn-reboot-0") != n2.Name || node1Took.Load() != nil {
			t.Fatalf("on trial: node-2 uncordoned or its lease released, or node-1 took it (%v)", node1Took.Load())
		}
		blessedAt := time.Now()
		e2.set(blessed())
		if err := <-released; err != nil {
			t.Fatal(err)
		}
		n := node(t, n2.Name)
		if n.Spec.Unschedulable || n.Annotations[RecordAnnotation] != "" {
			t.Fatalf("after the boot: unschedulable %v, record %q", n.Spec.Unschedulable, n.Annotations[RecordAnnotation])
		}
		if cd := condition(n, ConditionRolledBack); cd == nil || cd.Status != corev1.ConditionFalse || cd.Reason != ReasonBooted {
			t.Fatalf("condition %+v", cd)
		}
		for _, r := range []string{ReasonDraining, ReasonRebooting, ReasonBooted} {
			if len(events(t, n2.Name, r)) == 0 {
				t.Errorf("no %s event on node-2", r)
			}
		}
		fct.Eventually(t, 10*time.Second, "node-1 takes the lease", func() error {
			if node1Took.Load() == nil {
				return errors.New("not yet")
			}
			return nil
		})
		if took := *node1Took.Load(); took.Before(blessedAt) {
			t.Fatalf("node-1 took the lease at %s, before node-2 was blessed at %s", took, blessedAt)
		}
		if h := holder(t, "cairn-reboot-0"); h != n1.Name {
			t.Fatalf("holder %q after node-1 took the lease", h)
		}
		if err := s1.release(ctx); err != nil {
			t.Fatal(err)
		}

		c.MustKubectl("", "rollout", "status", "deployment/web", "--timeout=2m")
		stopPoll()
		polls.Wait()
		if m := minAvailable.Load(); m < 1 {
			t.Errorf("web had %d available replicas during the drain", m)
		}
		w.Stop()
		if !<-byEviction {
			t.Errorf("%s was not evicted through the Eviction API (no DisruptionTarget condition)", evicted.Name)
		}
		settled(t)
	})

	t.Run("rollback", func(t *testing.T) {
		e := &engine{sl: needReboot()}
		s := strategy(n2.Name, e)
		if err := s.Lock(ctx); err != nil {
			t.Fatal(err)
		}
		e.set(rolledBack())
		if err := s.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		settled(t)
		n := node(t, n2.Name)
		cd := condition(n, ConditionRolledBack)
		if cd == nil || cd.Status != corev1.ConditionTrue || cd.Reason != ReasonRolledBack || !strings.Contains(cd.Message, "2.0.0 (slot B) never booted to good") {
			t.Fatalf("condition %+v", cd)
		}
		if evs := events(t, n2.Name, ReasonRolledBack); len(evs) != 1 || evs[0].Type != corev1.EventTypeWarning {
			t.Fatalf("events %+v", evs)
		}
		if condition(n, corev1.NodeReady) == nil {
			t.Fatal("Ready condition gone")
		}
	})

	c.MustKubectl("", "delete", "deployment/web", "pdb/web", "--wait=false")
}
