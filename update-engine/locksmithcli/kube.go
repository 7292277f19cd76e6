package locksmithcli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/locksmith/kube"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// kubeStrategy is REBOOT_STRATEGY=kubernetes's Locker: the API server from the kubeconfig
// (-kubeconfig, else LOCKSMITHD_KUBECONFIG), the node's name from NODE_NAME or the host
// name, the slots from update_engine's socket.
func kubeStrategy(k updateconf.Kube, kubeconfig, socket string, log *slog.Logger) (*kube.Strategy, error) {
	if kubeconfig == "" {
		kubeconfig = k.Kubeconfig
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w (REBOOT_STRATEGY=kubernetes needs one for locksmithd's ServiceAccount: see update-engine/README.md)", kubeconfig, err)
	}
	rc.UserAgent = "locksmithd"
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	core, err := corev1client.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", rc.Host, err)
	}
	leases, err := coordinationv1client.NewForConfigAndClient(rc, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", rc.Host, err)
	}
	node, err := nodeName(os.Getenv, os.Hostname)
	if err != nil {
		return nil, err
	}
	log.Info("kubernetes strategy", "api", rc.Host, "node", node, "leases", fmt.Sprintf("%s/%s-0..%d", k.Namespace, k.Lease, k.Max-1))
	return &kube.Strategy{Core: core, Leases: leases, Node: node, Namespace: k.Namespace, LeaseName: k.Lease, Max: k.Max,
		LeaseDuration: k.LeaseDuration, DrainTimeout: k.DrainTimeout, Log: log,
		Slots: func(ctx context.Context) (*api.SlotList, error) { return engineSlots(ctx, socket) }}, nil
}

// nodeName is NODE_NAME, else the host name in lower case, which is kubelet's default
// node name.
func nodeName(getenv func(string) string, hostname func() (string, error)) (string, error) {
	if n := strings.TrimSpace(getenv("NODE_NAME")); n != "" {
		return n, nil
	}
	h, err := hostname()
	if err != nil {
		return "", fmt.Errorf("the node's name: NODE_NAME is not set and the host name is unknown: %w", err)
	}
	if h = strings.ToLower(strings.TrimSpace(h)); h == "" {
		return "", errors.New("the node's name: NODE_NAME is not set and the host name is empty")
	}
	return h, nil
}

// engineSlots asks update_engine's socket for the slots.
func engineSlots(ctx context.Context, socket string) (*api.SlotList, error) {
	var sl *api.SlotList
	err := api.Dial(ctx, socket, api.Call{Method: api.MethodSlots}, func(r api.Reply) bool {
		sl = r.Slots
		return sl == nil
	})
	if err == nil && sl == nil {
		err = fmt.Errorf("update_engine at %s: no slots in its reply", socket)
	}
	return sl, err
}
