package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// errDrainTimeout: pods were still on the node when the drain's time was up.
var errDrainTimeout = errors.New("drain timed out")

// MirrorAnnotation marks the API's copy of a static pod (kubelet's, from a manifest on the
// node): deleting it stops nothing, and kubelet runs the pod again after the boot.
const MirrorAnnotation = "kubernetes.io/config.mirror"

// podAction is what the drain does with one of the node's pods.
type podAction int

const (
	actEvict      podAction = iota
	actWait                 // being deleted already: waited for, not evicted again
	skipDaemonSet           // its DaemonSet would put it back at once, and tolerates the cordon
	skipMirror              // a static pod's mirror
	skipFinished            // Succeeded or Failed: nothing runs that the reboot would stop
)

func (a podAction) String() string {
	switch a {
	case actEvict:
		return "evict"
	case actWait:
		return "wait"
	case skipDaemonSet:
		return "skip (DaemonSet)"
	case skipMirror:
		return "skip (static pod)"
	case skipFinished:
		return "skip (finished)"
	}
	return fmt.Sprintf("podAction(%d)", int(a))
}

// classify decides what the drain does with a pod of the node, as `kubectl drain
// --ignore-daemonsets --delete-emptydir-data --force` does: DaemonSet pods and static pods
// stay; every other pod is evicted, a pod of no controller and one with an emptyDir too
// (the reboot would end them anyway); finished pods are left for their owners.
func classify(p *corev1.Pod) podAction {
	if _, ok := p.Annotations[MirrorAnnotation]; ok {
		return skipMirror
	}
	if c := metav1.GetControllerOf(p); c != nil && c.Kind == "DaemonSet" {
		return skipDaemonSet
	}
	// An evicted pod turns Succeeded or Failed once its containers stopped, before kubelet
	// has torn its sandbox down and the pod is gone: it is waited for until then.
	if p.DeletionTimestamp != nil {
		return actWait
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return skipFinished
	}
	return actEvict
}

// plan splits the node's pods into the ones to evict and the ones being deleted.
func plan(pods []corev1.Pod) (evict, terminating []*corev1.Pod) {
	for i := range pods {
		switch classify(&pods[i]) {
		case actEvict:
			evict = append(evict, &pods[i])
		case actWait:
			terminating = append(terminating, &pods[i])
		}
	}
	return evict, terminating
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// drain empties the node, a reconciler: each round lists the node's pods again and
// evicts, through the Eviction API, every one that should go and has not been evicted,
// until none is left but the skipped ones. A refused eviction (429: a
// PodDisruptionBudget allows no disruption now) is asked again the next round; when
// DrainTimeout passes with pods left, errDrainTimeout says which and why. Nothing is
// deleted around the Eviction API. The lease is renewed as the rounds go by.
func (s *Strategy) drain(ctx context.Context, lease string) error {
	start := s.now()
	renewed := start
	refused := map[string]string{} // pod → why its last eviction did not go through
	var listErr error
	for {
		pods, err := s.Core.Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("spec.nodeName", s.Node).String()})
		if err != nil {
			listErr = fmt.Errorf("list the pods of node %s: %w", s.Node, err)
			s.log().Warn("drain", "err", listErr)
		} else {
			listErr = nil
			evict, terminating := plan(pods.Items)
			if len(evict)+len(terminating) == 0 {
				s.log().Info("node drained", "node", s.Node, "in", s.now().Sub(start).Round(time.Second))
				return nil
			}
			left := map[string]string{}
			for _, p := range terminating {
				left[podKey(p)] = "terminating"
			}
			for _, p := range evict {
				left[podKey(p)] = s.evict(ctx, p)
			}
			refused = left
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.now().Sub(start) >= s.drainTimeout() {
			if listErr != nil {
				return fmt.Errorf("node %s: %w after %s: %w", s.Node, errDrainTimeout, s.drainTimeout(), listErr)
			}
			return fmt.Errorf("node %s: %w after %s: %s", s.Node, errDrainTimeout, s.drainTimeout(), summary(refused))
		}
		if s.now().Sub(renewed) >= s.leaseDuration()/3 {
			if err := s.renew(ctx, lease); err != nil {
				return err
			}
			renewed = s.now()
		}
		if err := s.sleep(ctx, s.interval()); err != nil {
			return err
		}
	}
}

// evict posts a policy/v1 Eviction for the pod and says where it stands: "evicted", or why
// not yet.
func (s *Strategy) evict(ctx context.Context, p *corev1.Pod) string {
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
		// Only this pod: one that a controller made again under the same name is not ours.
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}}
	err := s.Core.Pods(p.Namespace).EvictV1(ctx, ev)
	switch {
	case err == nil:
		s.log().Info("evicted", "pod", podKey(p))
		return "evicted"
	case apierrors.IsNotFound(err):
		return "gone"
	case apierrors.IsTooManyRequests(err):
		s.log().Debug("eviction refused; asking again", "pod", podKey(p), "reason", err)
	default:
		s.log().Warn("eviction", "pod", podKey(p), "err", err)
	}
	return err.Error()
}

// summary lists the pods left and why, a few of them, for the log and the Node event.
func summary(left map[string]string) string {
	keys := make([]string, 0, len(left))
	for k := range left {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d pods left", len(keys))
	for i, k := range keys {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(keys)-i)
			break
		}
		fmt.Fprintf(&b, "; %s: %s", k, left[k])
	}
	return b.String()
}
