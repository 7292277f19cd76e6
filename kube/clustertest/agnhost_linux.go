package clustertest

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/kube/images"
	"github.com/cairn-os/cairn/runtime/fixture"
)

// AgnhostTag is the tag Kubernetes' e2e tests ask for (test/utils/image/manifest.go).
const AgnhostTag = "2.66.1"

// AgnhostImage is Kubernetes' test image, agnhost (built from k8s.io/kubernetes by
// tools/kube into kubeDir) over the busybox fixture in place of upstream's Alpine, under
// the reference the e2e tests use.
func AgnhostImage(kubeDir string) (string, v1.Image, error) {
	bin, err := os.ReadFile(filepath.Join(kubeDir, "agnhost"))
	if err != nil {
		return "", nil, fmt.Errorf("agnhost (tools/kube/build.sh agnhost): %w", err)
	}
	bb, err := fixture.BusyboxLayerTar()
	if err != nil {
		return "", nil, err
	}
	layer, err := fixture.LayerTar([]fixture.Entry{
		{Header: tar.Header{Name: "agnhost", Typeflag: tar.TypeReg, Mode: 0o755}, Body: string(bin)},
		{Header: tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}},
	})
	if err != nil {
		return "", nil, err
	}
	img, err := fixture.OCIImage([]string{"pause"}, bb, layer)
	if err != nil {
		return "", nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", nil, err
	}
	cfg := cf.Config
	cfg.Entrypoint = []string{"/agnhost"}
	if img, err = mutate.Config(img, cfg); err != nil {
		return "", nil, err
	}
	return images.Registry + "/e2e-test-images/agnhost:" + AgnhostTag, img, nil
}

// Push uploads images (keyed by references under registry.k8s.io) to the cluster's registry.
func (c *Cluster) Push(t testenv.TB, imgs map[string]v1.Image) {
	t.Helper()
	if err := images.Push(t.Context(), imgs, c.pushTo.String(), io.Discard); err != nil {
		t.Fatalf("push: %v", err)
	}
}

// PushAgnhost builds and pushes AgnhostImage.
func (c *Cluster) PushAgnhost(t testenv.TB) {
	t.Helper()
	ref, img, err := AgnhostImage(c.Kube)
	if err != nil {
		t.Fatal(err)
	}
	c.Push(t, map[string]v1.Image{ref: img})
}

// WebDeployment is the Deployment "web" (label app: web): two replicas of agnhost's netexec
// serving on 8080, kept one per node by a topology spread constraint (cordoned nodes do not
// count), Ready once /healthz answers. The probe allows 5 s: a node busy with an update, or a
// TCG guest with the other's boot, has been seen to answer later than the default second
// three times in a row, which takes the pod out of its Service while it serves. A pod told to
// stop (a drain's eviction) serves on for 5 s (netexec's --delay-shutdown, within the 10 s
// grace period), as a Deployment meant to lose no request does: its endpoint leaves every
// node's kube-proxy rules only after the kubelet has begun to stop it, and a connection sent
// to it in between was refused or reset (the demo once saw every retry of one request, on
// both nodes, reset in the second after an eviction).
const WebDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: web}}}
      terminationGracePeriodSeconds: 10
      containers:
      - name: netexec
        image: ` + RegistryAddr + `/e2e-test-images/agnhost:` + AgnhostTag + `
        args: [netexec, --http-port=8080, --delay-shutdown=5]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, timeoutSeconds: 5}
`

// WebBudget is a PodDisruptionBudget that keeps one of WebDeployment's pods available: a
// node's drain evicts its pod only while the other one is Ready.
const WebBudget = `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
`
