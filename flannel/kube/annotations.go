// Package kube is flanneld's Kubernetes subnet manager (-kube-subnet-mgr), as stock
// flannel's: a host's subnet is its Node's spec.podCIDR (allocated by
// kube-controller-manager), its backend data is published in the Node's annotations under
// a prefix (flannel.alpha.coreos.com/ by default), and the other hosts' leases are read
// from their Nodes through an informer. The lease set it keeps is the same one the etcd
// registry keeps, so the VXLAN reconciler does not know where leases come from.
//
// annotations.go is pure: annotation names, Node to lease, and the annotations a host
// publishes. manager.go talks to the API server.
package kube

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/cairn-os/cairn/flannel/lease"
)

// DefaultAnnotationPrefix is stock flannel's -kube-annotation-prefix.
const DefaultAnnotationPrefix = "flannel.alpha.coreos.com"

// Errors of a Node that carries no usable lease.
var (
	// ErrNotManaged: the Node has no <prefix>kube-subnet-manager=true; flannel does not run there (yet).
	ErrNotManaged = errors.New("node is not managed by flannel's kube subnet manager")
	// ErrNoPodCIDR: the Node has no IPv4 pod CIDR (not allocated yet, or IPv6 only).
	ErrNoPodCIDR = errors.New("node has no IPv4 pod CIDR")
	// ErrBadAnnotation: an annotation's value does not parse.
	ErrBadAnnotation = errors.New("bad flannel annotation")
)

// Annotations are the names of the Node annotations flannel reads and writes.
type Annotations struct {
	SubnetKubeManaged   string // "true" once flanneld has published the node's backend data
	BackendData         string // {"VNI":1,"VtepMAC":"…"}
	BackendV6Data       string
	BackendType         string // "vxlan"
	PublicIP            string // the address peers send encapsulated traffic to
	PublicIPv6          string
	NodePublicIP        string // set by an operator: flanneld uses it as -public-ip
	NodePublicIPv6      string
	PublicIPOverwrite   string // set by an operator: published as public-ip instead of the host's own
	PublicIPv6Overwrite string
}

// The form Kubernetes allows for an annotation prefix: a DNS name, a slash, and optionally
// a name part ending in "-" that each annotation name is appended to.
var prefixForm = regexp.MustCompile(`^(?:[a-z0-9_-]+\.)+[a-z0-9_-]+/(?:[a-z0-9_-]+-)?$`)

// NewAnnotations returns the annotation names under prefix, normalised as stock flannel does:
// "example.com" becomes "example.com/…", "example.com/x" becomes "example.com/x-…".
func NewAnnotations(prefix string) (Annotations, error) {
	switch strings.Count(prefix, "/") {
	case 0:
		prefix += "/"
	case 1:
	default:
		return Annotations{}, fmt.Errorf("annotation prefix %q: at most one slash", prefix)
	}
	if !strings.HasSuffix(prefix, "/") && !strings.HasSuffix(prefix, "-") {
		prefix += "-"
	}
	if !prefixForm.MatchString(prefix) {
		return Annotations{}, fmt.Errorf("annotation prefix %q: must be a lower-case DNS name, optionally followed by /name", prefix)
	}
	return Annotations{
		SubnetKubeManaged:   prefix + "kube-subnet-manager",
		BackendData:         prefix + "backend-data",
		BackendV6Data:       prefix + "backend-v6-data",
		BackendType:         prefix + "backend-type",
		PublicIP:            prefix + "public-ip",
		PublicIPv6:          prefix + "public-ipv6",
		NodePublicIP:        prefix + "node-public-ip",
		NodePublicIPv6:      prefix + "node-public-ipv6",
		PublicIPOverwrite:   prefix + "public-ip-overwrite",
		PublicIPv6Overwrite: prefix + "public-ipv6-overwrite",
	}, nil
}

// PodCIDR returns the node's IPv4 pod CIDR: the IPv4 entry of spec.podCIDRs (one or two
// entries, dual stack), else spec.podCIDR.
func PodCIDR(spec corev1.NodeSpec) (netip.Prefix, error) {
	cidrs := spec.PodCIDRs
	if len(cidrs) == 0 && spec.PodCIDR != "" {
		cidrs = []string{spec.PodCIDR}
	}
	if len(cidrs) > 2 {
		return netip.Prefix{}, fmt.Errorf("%w: podCIDRs %v: at most one IPv4 and one IPv6", ErrNoPodCIDR, cidrs)
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: podCIDR %q: %v", ErrNoPodCIDR, c, err)
		}
		if p.Addr().Is4() {
			return p.Masked(), nil
		}
	}
	return netip.Prefix{}, ErrNoPodCIDR
}

// Lease turns a Node into the lease it stands for: its pod CIDR, and the public IP, backend
// type and backend data its flanneld published. The annotations come from whoever can
// write Nodes, so every value is checked; the backend data is checked by the reconciler,
// which skips a peer whose data it cannot use.
func (a Annotations) Lease(n *corev1.Node) (lease.Lease, error) {
	ann := n.Annotations
	if ann[a.SubnetKubeManaged] != "true" {
		return lease.Lease{}, ErrNotManaged
	}
	sn, err := PodCIDR(n.Spec)
	if err != nil {
		return lease.Lease{}, err
	}
	pub, err := netip.ParseAddr(ann[a.PublicIP])
	if err != nil || !pub.Is4() {
		return lease.Lease{}, fmt.Errorf("%w: %s=%q is not an IPv4 address", ErrBadAnnotation, a.PublicIP, ann[a.PublicIP])
	}
	var data json.RawMessage
	if d := bytes.TrimSpace([]byte(ann[a.BackendData])); len(d) > 0 && string(d) != "null" {
		if !json.Valid(d) {
			return lease.Lease{}, fmt.Errorf("%w: %s is not JSON", ErrBadAnnotation, a.BackendData)
		}
		data = d
	}
	l := lease.Lease{Subnet: sn, Attrs: lease.Attrs{PublicIP: pub, BackendType: ann[a.BackendType], BackendData: data}}
	l.Predecode()
	return l, nil
}

// Publish returns the annotations a host with attrs wants on its Node, given the Node's
// current ones, and whether any of them differs. An operator's public-ip-overwrite is
// published in place of the host's own address, as stock flannel does.
func (a Annotations) Publish(current map[string]string, attrs lease.Attrs) (map[string]string, bool) {
	pub := attrs.PublicIP.String()
	if o := current[a.PublicIPOverwrite]; o != "" {
		pub = o
	}
	want := map[string]string{
		a.BackendType:       attrs.BackendType,
		a.BackendData:       string(attrs.BackendData),
		a.PublicIP:          pub,
		a.SubnetKubeManaged: "true",
	}
	changed := false
	for k, v := range want {
		if cur, ok := current[k]; !ok || cur != v {
			changed = true
		}
	}
	return want, changed
}

// OperatorPublicIP returns the address an operator set for flanneld in the node-public-ip
// annotation, if any.
func (a Annotations) OperatorPublicIP(n *corev1.Node) (netip.Addr, error) {
	s := n.Annotations[a.NodePublicIP]
	if s == "" {
		return netip.Addr{}, nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("%w: %s=%q is not an IPv4 address", ErrBadAnnotation, a.NodePublicIP, s)
	}
	return ip, nil
}

// same reports whether two leases would program the same dataplane.
func same(x, y lease.Lease) bool {
	return x.Subnet == y.Subnet && x.Attrs.PublicIP == y.Attrs.PublicIP &&
		x.Attrs.BackendType == y.Attrs.BackendType && bytes.Equal(x.Attrs.BackendData, y.Attrs.BackendData)
}
