package flanneld

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/kube"
	"github.com/cairn-os/cairn/flannel/lease"
	"github.com/cairn-os/cairn/flannel/registry"
)

// subnets is where the leases come from: etcd (flannel/registry, the default) or the
// Kubernetes API (flannel/kube, -kube-subnet-mgr). The dataplane is the same for both.
type subnets interface {
	Config(ctx context.Context) (*config.Config, error)
	Acquire(ctx context.Context, cfg *config.Config, attrs lease.Attrs, hint netip.Prefix) (lease.Lease, error)
	Own() lease.Lease
	Leases() ([]lease.Lease, <-chan struct{})
	// Follow keeps this host's lease and follows the others' until ctx ends; onChange is
	// called when this host's subnet changes.
	Follow(ctx context.Context, cfg *config.Config, onChange func(lease.Lease))
}

type etcdSubnets struct{ *registry.Registry }

func (e etcdSubnets) Follow(ctx context.Context, cfg *config.Config, onChange func(lease.Lease)) {
	var wg sync.WaitGroup
	wg.Go(func() { e.Watch(ctx) })
	wg.Go(func() { e.Keep(ctx, cfg, onChange) })
	wg.Wait()
}

func (d *Daemon) source() string {
	if d.Opts.KubeSubnetMgr {
		return "the Kubernetes API"
	}
	return "etcd"
}

// connectKube sets up the Kubernetes subnet manager: the API client (from -kube-api-url
// and -kubeconfig-file, else the in-cluster config), this host's Node name, and the Node
// informer, synced before the next step.
func (d *Daemon) connectKube(ctx context.Context) error {
	o := d.Opts
	rc, err := clientcmd.BuildConfigFromFlags(o.KubeAPIURL, o.KubeconfigFile)
	if err != nil {
		return fmt.Errorf("kubernetes client config (-kube-api-url %q, -kubeconfig-file %q): %w", o.KubeAPIURL, o.KubeconfigFile, err)
	}
	rc.UserAgent = "flanneld/" + Version
	cs, err := corev1client.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes client for %s: %w", rc.Host, err)
	}
	name, err := nodeName(ctx, cs)
	if err != nil {
		return err
	}
	ann, err := kube.NewAnnotations(o.KubeAnnotationPrefix)
	if err != nil {
		return err
	}
	m := &kube.Manager{Client: cs, NodeName: name, Annotations: ann, NetConfPath: o.NetConfigPath,
		SetNodeNetworkUnavailable: o.SetNodeNetworkUnavailable, Log: d.Log}
	d.Log.Info("listing nodes", "api", rc.Host, "node", name)
	if err := m.Start(ctx); err != nil {
		return err
	}
	d.sm = m
	// An operator's node-public-ip annotation wins over -public-ip, as in stock flannel.
	if ip, err := m.NodePublicIP(); err != nil && errors.Is(err, kube.ErrBadAnnotation) {
		return err
	} else if ip.IsValid() {
		d.Log.Info("public IP from the node's annotation", "annotation", ann.NodePublicIP, "public_ip", ip)
		o.PublicIP = ip
	}
	return nil
}

// nodeName is $NODE_NAME, else the node of the pod $POD_NAMESPACE/$POD_NAME (flanneld
// running as a DaemonSet pod).
func nodeName(ctx context.Context, cs corev1client.CoreV1Interface) (string, error) {
	if n := Getenv("NODE_NAME"); n != "" {
		return n, nil
	}
	pod, ns := Getenv("POD_NAME"), Getenv("POD_NAMESPACE")
	if pod == "" || ns == "" {
		return "", errors.New("-kube-subnet-mgr needs the node's name: set NODE_NAME (or POD_NAME and POD_NAMESPACE in a pod)")
	}
	p, err := cs.Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("pod %s/%s: %w", ns, pod, err)
	}
	if p.Spec.NodeName == "" {
		return "", fmt.Errorf("pod %s/%s has no node name", ns, pod)
	}
	return p.Spec.NodeName, nil
}
