package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/locksmith"
)

var t0 = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

func lease(name, holder string, renewed time.Time, secs int32) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DefaultNamespace}}
	if holder != "" {
		l.Spec.HolderIdentity = new(holder)
	}
	if !renewed.IsZero() {
		l.Spec.RenewTime = new(metav1.NewMicroTime(renewed))
	}
	if secs >= 0 {
		l.Spec.LeaseDurationSeconds = new(secs)
	}
	return l
}

func TestExpired(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    *coordinationv1.Lease
		want bool
	}{
		{"renewed, within its duration", lease("l", "a", t0.Add(-59*time.Minute), 3600), false},
		{"renewed, duration passed", lease("l", "a", t0.Add(-time.Hour), 3600), true},
		{"renewed, long past", lease("l", "a", t0.Add(-48*time.Hour), 3600), true},
		{"renewed in the future (a clock ahead)", lease("l", "a", t0.Add(time.Minute), 60), false},
		{"no renew time, acquired recently", func() *coordinationv1.Lease {
			l := lease("l", "a", time.Time{}, 3600)
			l.Spec.AcquireTime = new(metav1.NewMicroTime(t0.Add(-time.Minute)))
			return l
		}(), false},
		{"no time at all", lease("l", "a", time.Time{}, 3600), true},
		{"no duration", lease("l", "a", t0, -1), true},
	} {
		if got := expired(tc.l, t0); got != tc.want {
			t.Errorf("%s: expired = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPick(t *testing.T) {
	fresh, stale := t0.Add(-time.Minute), t0.Add(-2*time.Hour)
	for _, tc := range []struct {
		name   string
		leases []*coordinationv1.Lease
		want   int
	}{
		{"none created", []*coordinationv1.Lease{nil}, 0},
		{"free", []*coordinationv1.Lease{lease("r-0", "", fresh, 3600)}, 0},
		{"held by another", []*coordinationv1.Lease{lease("r-0", "other", fresh, 3600)}, -1},
		{"held by another, expired", []*coordinationv1.Lease{lease("r-0", "other", stale, 3600)}, 0},
		{"held by me", []*coordinationv1.Lease{lease("r-0", "me", fresh, 3600)}, 0},
		{"held by me, expired: still mine", []*coordinationv1.Lease{lease("r-0", "me", stale, 3600)}, 0},
		{"max 3: first taken, second missing", []*coordinationv1.Lease{lease("r-0", "a", fresh, 3600), nil, nil}, 1},
		{"max 3: all held", []*coordinationv1.Lease{lease("r-0", "a", fresh, 3600), lease("r-1", "b", fresh, 3600), lease("r-2", "c", fresh, 3600)}, -1},
		{"max 3: mine is the last, an earlier one free", []*coordinationv1.Lease{lease("r-0", "", fresh, 3600), lease("r-1", "b", fresh, 3600), lease("r-2", "me", fresh, 3600)}, 2},
		{"max 2: the free one after a held one", []*coordinationv1.Lease{lease("r-0", "a", fresh, 3600), lease("r-1", "", stale, 3600)}, 1},
	} {
		if got := pick(tc.leases, "me", t0); got != tc.want {
			t.Errorf("%s: pick = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestTake(t *testing.T) {
	for _, tc := range []struct {
		name            string
		l               *coordinationv1.Lease
		wantTransitions int32
		wantAcquired    bool // the acquire time is now
	}{
		{"new", lease("r-0", "", time.Time{}, -1), 1, true},
		{"from another", func() *coordinationv1.Lease {
			l := lease("r-0", "other", t0.Add(-2*time.Hour), 3600)
			l.Spec.LeaseTransitions = new(int32(4))
			return l
		}(), 5, true},
		{"renewal", func() *coordinationv1.Lease {
			l := lease("r-0", "me", t0.Add(-time.Minute), 3600)
			l.Spec.LeaseTransitions = new(int32(2))
			l.Spec.AcquireTime = new(metav1.NewMicroTime(t0.Add(-10 * time.Minute)))
			return l
		}(), 2, false},
	} {
		take(tc.l, "me", t0, 90*time.Minute)
		s := tc.l.Spec
		if holderOf(tc.l) != "me" || !s.RenewTime.Time.Equal(t0) || *s.LeaseDurationSeconds != 5400 || *s.LeaseTransitions != tc.wantTransitions ||
			s.AcquireTime.Time.Equal(t0) != tc.wantAcquired {
			t.Errorf("%s: %+v", tc.name, s)
		}
	}
}

func pod(name string, mod func(*corev1.Pod)) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if mod != nil {
		mod(&p)
	}
	return p
}

func ownedBy(kind string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: "owner", Controller: new(true)}}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		pod  corev1.Pod
		want podAction
	}{
		{pod("replicaset", ownedBy("ReplicaSet")), actEvict},
		{pod("statefulset", ownedBy("StatefulSet")), actEvict},
		{pod("bare", nil), actEvict},
		{pod("emptydir", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}), actEvict},
		{pod("daemonset", ownedBy("DaemonSet")), skipDaemonSet},
		{pod("daemonset-not-controller", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "ds"}}
		}), actEvict},
		{pod("mirror", func(p *corev1.Pod) { p.Annotations = map[string]string{MirrorAnnotation: "abc"} }), skipMirror},
		{pod("mirror-of-a-node", func(p *corev1.Pod) {
			p.Annotations = map[string]string{MirrorAnnotation: "abc"}
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "Node", Name: "n1", Controller: new(true)}}
		}), skipMirror},
		{pod("succeeded", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), skipFinished},
		{pod("failed", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }), skipFinished},
		{pod("pending", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }), actEvict},
		{pod("terminating", func(p *corev1.Pod) { p.DeletionTimestamp = new(metav1.NewTime(t0)) }), actWait},
		{pod("evicted-and-stopped", func(p *corev1.Pod) {
			p.DeletionTimestamp = new(metav1.NewTime(t0))
			p.Status.Phase = corev1.PodFailed
		}), actWait},
		{pod("terminating-daemonset", func(p *corev1.Pod) {
			ownedBy("DaemonSet")(p)
			p.DeletionTimestamp = new(metav1.NewTime(t0))
		}), skipDaemonSet},
	} {
		if got := classify(&tc.pod); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.pod.Name, got, tc.want)
		}
	}
}

func slots(active, next string, ss ...api.Slot) *api.SlotList {
	for i := range ss {
		ss[i].Active = ss[i].Slot == active
		ss[i].NextBoot = ss[i].Slot == next
	}
	return &api.SlotList{Active: active, Next: next, Slots: ss}
}

func TestTargetAndJudge(t *testing.T) {
	a1 := api.Slot{Slot: "A", Version: "1.0.0", State: api.SlotGood}
	b2 := func(state string) api.Slot { return api.Slot{Slot: "B", Version: "2.0.0", State: state} }
	into := Record{Slot: "B", Version: "2.0.0"}
	if got := target(slots("A", "B", a1, b2(api.SlotTrying))); got != into {
		t.Errorf("target before the reboot: %+v", got)
	}
	if got := target(slots("A", "A", a1, api.Slot{Slot: "B", State: api.SlotEmpty})); got != (Record{}) {
		t.Errorf("target with no update: %+v", got)
	}
	for _, tc := range []struct {
		name string
		rec  Record
		sl   *api.SlotList
		want Outcome
	}{
		{"blessed good", into, slots("B", "B", a1, b2(api.SlotGood)), Booted},
		{"on trial", into, slots("B", "B", a1, b2(api.SlotTrying)), OnTrial},
		{"on its last try", into, slots("B", "A", a1, b2(api.SlotBad)), OnTrial},
		{"rolled back", into, slots("A", "A", a1, b2(api.SlotBad)), RolledBack},
		{"not rebooted yet", into, slots("A", "B", a1, b2(api.SlotTrying)), NotRebooted},
		{"update undone", into, slots("A", "A", a1, api.Slot{Slot: "B", State: api.SlotEmpty}), NotRebooted},
		{"a reboot without an update", Record{}, slots("A", "A", a1, b2(api.SlotBad)), Booted},
	} {
		if got := Judge(tc.rec, tc.sl); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestRolledBackCondition(t *testing.T) {
	before := metav1.NewTime(t0.Add(-24 * time.Hour))
	old := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
		{Type: ConditionRolledBack, Status: corev1.ConditionTrue, LastTransitionTime: before}}
	if c := rolledBackCondition(old, corev1.ConditionTrue, ReasonRolledBack, "m", t0); !c.LastTransitionTime.Equal(&before) || !c.LastHeartbeatTime.Time.Equal(t0) {
		t.Errorf("same status: transition moved: %+v", c)
	}
	if c := rolledBackCondition(old, corev1.ConditionFalse, ReasonBooted, "m", t0); !c.LastTransitionTime.Time.Equal(t0) || c.Reason != ReasonBooted {
		t.Errorf("new status: %+v", c)
	}
	if c := rolledBackCondition(nil, corev1.ConditionTrue, ReasonRolledBack, "m", t0); !c.LastTransitionTime.Time.Equal(t0) || c.Type != ConditionRolledBack {
		t.Errorf("first: %+v", c)
	}
}

// cluster is a fake API server: the fake clientset with a PodDisruptionBudget of sorts
// (evictions of the pods in protected are refused with 429 while it is set), the node
// field selector that the fake's list ignores, and the events recorded.
type cluster struct {
	*fake.Clientset
	mu        sync.Mutex
	protected map[string]bool
	evicted   []string
	events    []corev1.Event
}

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

func newCluster(t *testing.T, objs ...runtime.Object) *cluster {
	c := &cluster{Clientset: fake.NewClientset(objs...), protected: map[string]bool{}}
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.protected[ev.Name] {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		if err := c.Tracker().Delete(podsGVR, ev.Namespace, ev.Name); err != nil {
			return true, nil, err
		}
		c.evicted = append(c.evicted, ev.Name)
		return true, nil, nil
	})
	c.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		node, _ := a.(k8stesting.ListAction).GetListRestrictions().Fields.RequiresExactMatch("spec.nodeName")
		o, err := c.Tracker().List(podsGVR, schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, "")
		if err != nil {
			return true, nil, err
		}
		all := o.(*corev1.PodList)
		all.Items = slices.DeleteFunc(all.Items, func(p corev1.Pod) bool { return node != "" && p.Spec.NodeName != node })
		return true, all, nil
	})
	c.PrependReactor("create", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ev := a.(k8stesting.CreateAction).GetObject().(*corev1.Event)
		c.mu.Lock()
		c.events = append(c.events, *ev)
		c.mu.Unlock()
		return true, ev, nil
	})
	return c
}

func (c *cluster) protect(name string, on bool) {
	c.mu.Lock()
	c.protected[name] = on
	c.mu.Unlock()
}

func (c *cluster) reasons() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var r []string
	for _, e := range c.events {
		if e.InvolvedObject.Kind != "Node" || e.InvolvedObject.Name != "n1" || e.Namespace != "default" {
			panic(fmt.Sprintf("event not on node n1: %+v", e))
		}
		r = append(r, e.Type+" "+e.Reason)
	}
	return r
}

func (c *cluster) node(t *testing.T) *corev1.Node {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (c *cluster) holder(t *testing.T, name string) string {
	t.Helper()
	l, err := c.CoordinationV1().Leases(DefaultNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return holderOf(l)
}

func (c *cluster) podNames(t *testing.T) []string {
	t.Helper()
	l, err := c.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// engine is update_engine's slots as the test moves them along.
type engine struct {
	mu sync.Mutex
	sl *api.SlotList
}

func (e *engine) set(sl *api.SlotList) {
	e.mu.Lock()
	e.sl = sl
	e.mu.Unlock()
}

func (e *engine) Slots(context.Context) (*api.SlotList, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sl, nil
}

var (
	slotA1 = api.Slot{Slot: "A", Version: "1.0.0", State: api.SlotGood}
	// needReboot: 2.0.0 written to B, the next boot.
	needReboot = func() *api.SlotList {
		return slots("A", "B", slotA1, api.Slot{Slot: "B", Version: "2.0.0", State: api.SlotTrying, TriesLeft: 3})
	}
	onTrial = func() *api.SlotList {
		return slots("B", "B", slotA1, api.Slot{Slot: "B", Version: "2.0.0", State: api.SlotTrying, TriesLeft: 2, TriesDone: 1})
	}
	blessed = func() *api.SlotList {
		return slots("B", "B", slotA1, api.Slot{Slot: "B", Version: "2.0.0", State: api.SlotGood})
	}
	rolledBack = func() *api.SlotList {
		return slots("A", "A", slotA1, api.Slot{Slot: "B", Version: "2.0.0", State: api.SlotBad, TriesDone: 3})
	}
)

func node1(unschedulable bool) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "1"}, Spec: corev1.NodeSpec{Unschedulable: unschedulable},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

func objects(n *corev1.Node, pods ...corev1.Pod) []runtime.Object {
	objs := []runtime.Object{n}
	for i := range pods {
		objs = append(objs, &pods[i])
	}
	return objs
}

// clock is a fake time that Sleep moves on.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func strategy(t *testing.T, c *cluster, e *engine, clk *clock) *Strategy {
	return &Strategy{Core: c.CoreV1(), Leases: c.CoordinationV1(), Node: "n1", Slots: e.Slots,
		DrainTimeout: time.Minute, Interval: 5 * time.Second, Now: clk.Now, Sleep: clk.Sleep,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func TestLockDrainRebootUnlock(t *testing.T) {
	ctx := context.Background()
	other := pod("elsewhere", nil)
	other.Spec.NodeName = "n2"
	c := newCluster(t, objects(node1(false),
		pod("web", ownedBy("ReplicaSet")), pod("db", ownedBy("StatefulSet")), pod("proxy", ownedBy("DaemonSet")),
		pod("etcd", func(p *corev1.Pod) { p.Annotations = map[string]string{MirrorAnnotation: "x"} }),
		pod("job", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), other)...)
	e := &engine{sl: needReboot()}
	clk := &clock{now: t0}
	s := strategy(t, c, e, clk)

	// db's budget allows no disruption for the first 20 s.
	c.protect("db", true)
	s.Sleep = func(ctx context.Context, d time.Duration) error {
		err := clk.Sleep(ctx, d)
		if !clk.Now().Before(t0.Add(20 * time.Second)) {
			c.protect("db", false)
		}
		return err
	}
	if err := s.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if h := c.holder(t, "cairn-reboot-0"); h != "n1" {
		t.Fatalf("lease holder %q", h)
	}
	n := c.node(t)
	rec, ok, err := recordOf(n)
	if !n.Spec.Unschedulable || !ok || err != nil || rec != (Record{Slot: "B", Version: "2.0.0", Cordoned: true}) {
		t.Fatalf("node after the drain: unschedulable %v, record %+v %v %v", n.Spec.Unschedulable, rec, ok, err)
	}
	if got := c.podNames(t); !slices.Equal(got, []string{"elsewhere", "etcd", "job", "proxy"}) {
		t.Fatalf("pods left %v", got)
	}
	if !slices.Equal(c.evicted, []string{"web", "db"}) {
		t.Fatalf("evicted %v", c.evicted)
	}
	if clk.Now().Sub(t0) < 20*time.Second {
		t.Fatalf("drained in %s, before db's budget allowed it", clk.Now().Sub(t0))
	}

	// The reboot: the new version on trial keeps the cordon and the lease.
	e.set(onTrial())
	clk.now = clk.now.Add(10 * time.Minute)
	if err := s.Unlock(ctx); !errors.Is(err, locksmith.ErrKeep) {
		t.Fatalf("Unlock on trial: %v", err)
	}
	if !c.node(t).Spec.Unschedulable || c.holder(t, "cairn-reboot-0") != "n1" {
		t.Fatal("on trial: uncordoned or released")
	}
	l, _ := c.CoordinationV1().Leases(DefaultNamespace).Get(ctx, "cairn-reboot-0", metav1.GetOptions{})
	if !l.Spec.RenewTime.Time.Equal(clk.Now()) {
		t.Fatalf("on trial: lease not renewed: %v", l.Spec.RenewTime)
	}

	e.set(blessed())
	if err := s.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	n = c.node(t)
	if n.Spec.Unschedulable || n.Annotations[RecordAnnotation] != "" || c.holder(t, "cairn-reboot-0") != "" {
		t.Fatalf("after the boot: unschedulable %v, annotations %v, holder %q", n.Spec.Unschedulable, n.Annotations, c.holder(t, "cairn-reboot-0"))
	}
	cond := condition(n, ConditionRolledBack)
	if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != ReasonBooted || !strings.Contains(cond.Message, "2.0.0") {
		t.Fatalf("condition %+v", cond)
	}
	if condition(n, corev1.NodeReady) == nil {
		t.Fatal("the patch dropped the Ready condition")
	}
	want := []string{"Normal RebootDrain", "Normal Rebooting", "Normal UpdateBooted"}
	if got := c.reasons(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Nothing recorded, nothing held: the next start does nothing.
	if err := s.Unlock(ctx); err != nil || len(c.reasons()) != 3 {
		t.Fatalf("Unlock again: %v, events %v", err, c.reasons())
	}
}

func condition(n *corev1.Node, typ corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == typ {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// A budget that never allows the eviction: the drain gives up after its timeout, says so,
// uncordons the node and releases the lease; the pod stays.
func TestDrainTimeout(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, objects(node1(false), pod("web", ownedBy("ReplicaSet")), pod("other", ownedBy("ReplicaSet")))...)
	c.protect("web", true)
	clk := &clock{now: t0}
	s := strategy(t, c, &engine{sl: needReboot()}, clk)
	err := s.Lock(ctx)
	if !errors.Is(err, locksmith.ErrGaveUp) || !strings.Contains(err.Error(), "default/web: Cannot evict pod") {
		t.Fatalf("Lock: %v", err)
	}
	if d := clk.Now().Sub(t0); d < time.Minute || d > time.Minute+5*time.Second {
		t.Fatalf("gave up after %s, want the 1m timeout", d)
	}
	n := c.node(t)
	if n.Spec.Unschedulable || n.Annotations[RecordAnnotation] != "" || c.holder(t, "cairn-reboot-0") != "" {
		t.Fatalf("after giving up: unschedulable %v, annotations %v, holder %q", n.Spec.Unschedulable, n.Annotations, c.holder(t, "cairn-reboot-0"))
	}
	if got := c.podNames(t); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("pods %v: web must stay, other go", got)
	}
	want := []string{"Normal RebootDrain", "Warning RebootDrainTimedOut"}
	if got := c.reasons(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// A node an operator cordoned stays cordoned after the reboot; the rollback says so on
// the Node.
func TestOperatorsCordonAndRollback(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, objects(node1(true))...)
	e := &engine{sl: needReboot()}
	s := strategy(t, c, e, &clock{now: t0})
	if err := s.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := recordOf(c.node(t)); rec.Cordoned {
		t.Fatalf("record %+v: the cordon was the operator's", rec)
	}
	e.set(rolledBack())
	if err := s.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	n := c.node(t)
	if !n.Spec.Unschedulable || n.Annotations[RecordAnnotation] != "" || c.holder(t, "cairn-reboot-0") != "" {
		t.Fatalf("unschedulable %v (want the operator's cordon kept), annotations %v, holder %q", n.Spec.Unschedulable, n.Annotations, c.holder(t, "cairn-reboot-0"))
	}
	cond := condition(n, ConditionRolledBack)
	if cond == nil || cond.Status != corev1.ConditionTrue || cond.Reason != ReasonRolledBack ||
		!strings.Contains(cond.Message, "2.0.0 (slot B) never booted to good") || !strings.Contains(cond.Message, "1.0.0 (slot A)") {
		t.Fatalf("condition %+v", cond)
	}
	want := []string{"Normal RebootDrain", "Normal Rebooting", "Warning UpdateRolledBack"}
	if got := c.reasons(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// locksmithd stopped after the drain, before the reboot: the next start gives the node
// and the lease back; a lease held without a record (stopped before the cordon) too.
func TestUnlockNotRebooted(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, objects(node1(false))...)
	s := strategy(t, c, &engine{sl: needReboot()}, &clock{now: t0})
	if err := s.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.node(t); n.Spec.Unschedulable || c.holder(t, "cairn-reboot-0") != "" || condition(n, ConditionRolledBack) != nil {
		t.Fatalf("not rebooted: unschedulable %v, holder %q, conditions %v", n.Spec.Unschedulable, c.holder(t, "cairn-reboot-0"), n.Status.Conditions)
	}
	if _, err := s.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx); err != nil || c.holder(t, "cairn-reboot-0") != "" {
		t.Fatalf("lease without a record: %v, holder %q", err, c.holder(t, "cairn-reboot-0"))
	}
}

func TestAcquire(t *testing.T) {
	ctx := context.Background()
	fresh := t0.Add(-time.Minute)
	c := newCluster(t, node1(false), lease("cairn-reboot-0", "n2", fresh, 3600), lease("cairn-reboot-1", "n3", t0.Add(-2*time.Hour), 3600))
	s := strategy(t, c, &engine{}, &clock{now: t0})
	if _, err := s.acquire(ctx); !errors.Is(err, ErrLeasesHeld) || !strings.Contains(err.Error(), "cairn-reboot-0: n2") {
		t.Fatalf("max 1, held: %v", err)
	}
	// max 2: n3's lease expired an hour ago.
	s.Max = 2
	if name, err := s.acquire(ctx); err != nil || name != "cairn-reboot-1" || c.holder(t, "cairn-reboot-1") != "n1" {
		t.Fatalf("took %q: %v", name, err)
	}
	// Taking it again is renewing it.
	if name, err := s.acquire(ctx); err != nil || name != "cairn-reboot-1" {
		t.Fatalf("again: %q %v", name, err)
	}
	l, _ := c.CoordinationV1().Leases(DefaultNamespace).Get(ctx, "cairn-reboot-1", metav1.GetOptions{})
	if *l.Spec.LeaseTransitions != 1 || *l.Spec.LeaseDurationSeconds != 3600 {
		t.Fatalf("lease %+v", l.Spec)
	}

	// A write that loses a race (409) reads again and decides anew: here n2 got the last
	// free lease first, so n1 finds them all held.
	c2 := newCluster(t, node1(false), lease("cairn-reboot-0", "", fresh, 3600))
	c2.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if holderOf(l) == "n1" {
			won := lease("cairn-reboot-0", "n2", t0, 3600)
			c2.Tracker().Update(schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, won, DefaultNamespace)
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, l.Name, errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	s2 := strategy(t, c2, &engine{}, &clock{now: t0})
	if _, err := s2.acquire(ctx); !errors.Is(err, ErrLeasesHeld) {
		t.Fatalf("after losing the race: %v", err)
	}
}
