package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// RecordAnnotation holds, on the Node, what locksmithd did before the reboot (a Record),
// for the step after it.
const RecordAnnotation = "update.cairn-os.org/reboot"

// ConditionRolledBack is the Node condition that tells how the last update's boot went:
// True when the node rolled back from it, False when it was blessed good.
const ConditionRolledBack corev1.NodeConditionType = "CairnUpdateRolledBack"

// Event reasons (on the Node) and the condition's.
const (
	ReasonDraining        = "RebootDrain"
	ReasonDrainTimedOut   = "RebootDrainTimedOut"
	ReasonRebooting       = "Rebooting"
	ReasonRolledBack      = "UpdateRolledBack" // the event's and the condition's (True)
	ReasonBooted          = "UpdateBooted"     // the event's and the condition's (False)
	eventSourceComponent  = "locksmithd"
	maxEventMessageLength = 1024
)

// Record is what the node is rebooting into and whether locksmithd cordoned it.
type Record struct {
	Slot    string `json:"slot,omitempty"`    // the slot the reboot boots; "" for a reboot without an update
	Version string `json:"version,omitempty"` // its version
	// Cordoned is set when the cordon is locksmithd's: a node an operator had cordoned
	// stays cordoned after the reboot.
	Cordoned bool `json:"cordoned"`
}

// recordOf reads the Node's Record; ok is false when there is none.
func recordOf(n *corev1.Node) (rec Record, ok bool, err error) {
	v, ok := n.Annotations[RecordAnnotation]
	if !ok {
		return Record{}, false, nil
	}
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return Record{}, true, fmt.Errorf("node %s: annotation %s=%q: %w", n.Name, RecordAnnotation, v, err)
	}
	return rec, true, nil
}

// patchNode merge-patches the Node with what want returns for the Node as read (nil:
// nothing to change). The patch carries the resourceVersion read, so the API server
// applies it only to that version: a Node changed meanwhile is read again.
func (s *Strategy) patchNode(ctx context.Context, want func(*corev1.Node) (map[string]any, error)) error {
	nodes := s.Core.Nodes()
	for {
		n, err := nodes.Get(ctx, s.Node, metav1.GetOptions{})
		if err != nil {
			return nodeErr(s.Node, err)
		}
		patch, err := want(n)
		if err != nil || patch == nil {
			return err
		}
		meta, _ := patch["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
			patch["metadata"] = meta
		}
		meta["resourceVersion"] = n.ResourceVersion
		b, err := json.Marshal(patch)
		if err != nil {
			return err
		}
		_, err = nodes.Patch(ctx, s.Node, types.MergePatchType, b, metav1.PatchOptions{})
		switch {
		case err == nil:
			return nil
		case !apierrors.IsConflict(err):
			return fmt.Errorf("node %s: patch %s: %w", s.Node, b, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// nodeErr names the node in an error reading it, and says what to check when it does not
// exist.
func nodeErr(name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("node %s: %w (NODE_NAME, else the host name, must be this machine's Node name)", name, err)
	}
	return fmt.Errorf("node %s: %w", name, err)
}

// cordon marks the node unschedulable and writes rec on it; rec.Cordoned is set when the
// node was schedulable (or a cordon of locksmithd's is still on it).
func (s *Strategy) cordon(ctx context.Context, rec Record) error {
	return s.patchNode(ctx, func(n *corev1.Node) (map[string]any, error) {
		old, _, _ := recordOf(n)
		rec.Cordoned = old.Cordoned || !n.Spec.Unschedulable
		b, _ := json.Marshal(rec)
		return map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{RecordAnnotation: string(b)}},
			"spec":     map[string]any{"unschedulable": true},
		}, nil
	})
}

// uncordon takes locksmithd's cordon and its Record off the node; an operator's cordon
// stays.
func (s *Strategy) uncordon(ctx context.Context) error {
	return s.patchNode(ctx, func(n *corev1.Node) (map[string]any, error) {
		rec, ok, err := recordOf(n)
		if !ok {
			return nil, nil
		}
		if err != nil {
			// Whose cordon it is cannot be told: it stays, the unreadable record goes.
			s.log().Warn("uncordon", "err", err)
		}
		patch := map[string]any{"metadata": map[string]any{"annotations": map[string]any{RecordAnnotation: nil}}}
		if rec.Cordoned {
			patch["spec"] = map[string]any{"unschedulable": false}
			s.log().Info("uncordoning", "node", s.Node)
		}
		return patch, nil
	})
}

// rolledBackCondition is the condition to set, given the Node's current ones: the
// transition time moves only when the status changes.
func rolledBackCondition(old []corev1.NodeCondition, status corev1.ConditionStatus, reason, msg string, now time.Time) corev1.NodeCondition {
	t := metav1.NewTime(now)
	c := corev1.NodeCondition{Type: ConditionRolledBack, Status: status, Reason: reason, Message: msg,
		LastHeartbeatTime: t, LastTransitionTime: t}
	for _, o := range old {
		if o.Type == ConditionRolledBack && o.Status == status {
			c.LastTransitionTime = o.LastTransitionTime
		}
	}
	return c
}

// setCondition sets the CairnUpdateRolledBack condition with a strategic merge patch of
// the Node's status, which replaces that condition (merge key: type) and no other.
func (s *Strategy) setCondition(ctx context.Context, status corev1.ConditionStatus, reason, msg string) error {
	n, err := s.Core.Nodes().Get(ctx, s.Node, metav1.GetOptions{})
	if err != nil {
		return nodeErr(s.Node, err)
	}
	c := rolledBackCondition(n.Status.Conditions, status, reason, msg, s.now())
	b, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{c}}})
	if err != nil {
		return err
	}
	if _, err := s.Core.Nodes().PatchStatus(ctx, s.Node, b); err != nil {
		return fmt.Errorf("node %s: condition %s=%s: %w", s.Node, ConditionRolledBack, status, err)
	}
	return nil
}

// event records an event on the Node, in the default namespace and with the Node's name
// as its UID, as kubelet does, so that `kubectl describe node` shows it. An event that
// cannot be written is logged, not a failure of the step that had something to say.
func (s *Strategy) event(ctx context.Context, typ, reason, msg string) {
	if len(msg) > maxEventMessageLength {
		msg = msg[:maxEventMessageLength-3] + "..."
	}
	t := metav1.NewTime(s.now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: s.Node + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: s.Node, UID: types.UID(s.Node)},
		Reason:         reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: eventSourceComponent, Host: s.Node},
		FirstTimestamp: t, LastTimestamp: t, Count: 1,
	}
	if _, err := s.Core.Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		s.log().Warn("node event", "reason", reason, "err", err)
	}
}
