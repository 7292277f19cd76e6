package cri

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/appc/spec/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
)

// What rktlet knows of its sandboxes and containers is on disk, in the pods' manifests, so
// that a restarted rktlet finds it again: a sandbox's CRI metadata as pod annotations, its
// labels and annotations as the pod's user labels and annotations; a container's as its
// app's annotations, user labels and user annotations. The index below is that, read
// once at start and kept up to date by the calls that change it; states (running,
// exited, exit codes, times) are always read from the pods' records.

// Owner is the pod owner (pod.AnnotationOwner) rktlet's sandboxes name.
const Owner = "rktlet"

// Pod annotations of a sandbox.
const (
	annName       = "cairn-os.org/cri-name"
	annNamespace  = "cairn-os.org/cri-namespace"
	annUID        = "cairn-os.org/cri-uid"
	annAttempt    = "cairn-os.org/cri-attempt"
	annLogDir     = "cairn-os.org/cri-log-directory"
	annHandler    = "cairn-os.org/cri-runtime-handler"
	annNamespaces = "cairn-os.org/cri-namespaces"
	annPrivileged = "cairn-os.org/cri-privileged"
)

// App annotations of a container.
const (
	annID      = "cairn-os.org/cri-id"
	annImage   = "cairn-os.org/cri-image"
	annLogPath = "cairn-os.org/cri-log-path"
	annMounts  = "cairn-os.org/cri-mounts"
	annEnv     = "cairn-os.org/cri-env"
	annStdio   = "cairn-os.org/cri-stdio"
)

// sandbox is what rktlet keeps of a sandbox: its CRI identity and configuration. The pod's
// state is read from disk when asked for.
type sandbox struct {
	id             string // the pod's UUID
	meta           *runtimeapi.PodSandboxMetadata
	labels         map[string]string
	annotations    map[string]string
	createdAt      time.Time
	logDir         string
	runtimeHandler string
	namespaces     *runtimeapi.NamespaceOption
	privileged     bool

	// mu orders what changes the sandbox: its stop and removal, its containers' creation
	// and removal.
	mu sync.Mutex
}

// fullName is the name kubelet may give one sandbox at a time (containerd's).
func (s *sandbox) fullName() string {
	return sandboxName(s.meta)
}

func sandboxName(m *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{m.GetName(), m.GetNamespace(), m.GetUid(), strconv.FormatUint(uint64(m.GetAttempt()), 10)}, "_")
}

// container is what rktlet keeps of a container: its CRI identity and configuration, and
// the app that runs it.
type container struct {
	id          string
	sandboxID   string
	app         string // the app's name in the pod
	meta        *runtimeapi.ContainerMetadata
	image       string // the image as CreateContainer named it
	imageRef    string // its ID in the store
	labels      map[string]string
	annotations map[string]string
	logPath     string // as the CRI gave it: relative to the sandbox's log directory
	mounts      []*runtimeapi.Mount
	stdin       bool
	stdinOnce   bool
	tty         bool
	// env are its environment variables that appc's app cannot name, NAME=VALUE (the
	// others are in its app's environment).
	env []string
}

func containerName(m *runtimeapi.ContainerMetadata, sb *sandbox) string {
	return strings.Join([]string{m.GetName(), sb.meta.GetName(), sb.meta.GetNamespace(), sb.meta.GetUid(), strconv.FormatUint(uint64(m.GetAttempt()), 10)}, "_")
}

// index holds the sandboxes and containers, by ID, and the names they reserve.
type index struct {
	mu             sync.RWMutex
	sandboxes      map[string]*sandbox
	containers     map[string]*container
	sandboxNames   map[string]string // full name -> ID
	containerNames map[string]string
}

func newIndex() *index {
	return &index{sandboxes: map[string]*sandbox{}, containers: map[string]*container{},
		sandboxNames: map[string]string{}, containerNames: map[string]string{}}
}

// reserveSandbox takes sb's name for id; a name that another sandbox has is AlreadyExists.
func (x *index) reserveSandbox(name, id string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if other, ok := x.sandboxNames[name]; ok && other != id {
		return existsf("sandbox name %q is taken by sandbox %s; remove it first", name, other)
	}
	x.sandboxNames[name] = id
	return nil
}

func (x *index) reserveContainer(name, id string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if other, ok := x.containerNames[name]; ok && other != id {
		return existsf("container name %q is taken by container %s; remove it first", name, other)
	}
	x.containerNames[name] = id
	return nil
}

func (x *index) releaseSandboxName(name, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sandboxNames[name] == id {
		delete(x.sandboxNames, name)
	}
}

func (x *index) releaseContainerName(name, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.containerNames[name] == id {
		delete(x.containerNames, name)
	}
}

func (x *index) addSandbox(sb *sandbox) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sandboxes[sb.id] = sb
	x.sandboxNames[sb.fullName()] = sb.id
}

func (x *index) addContainer(c *container) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.containers[c.id] = c
}

// removeSandbox forgets a sandbox and its containers, and frees their names.
func (x *index) removeSandbox(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	sb, ok := x.sandboxes[id]
	if !ok {
		return
	}
	delete(x.sandboxes, id)
	if x.sandboxNames[sb.fullName()] == id {
		delete(x.sandboxNames, sb.fullName())
	}
	for cid, c := range x.containers {
		if c.sandboxID == id {
			delete(x.containers, cid)
			if n := containerName(c.meta, sb); x.containerNames[n] == cid {
				delete(x.containerNames, n)
			}
		}
	}
}

func (x *index) removeContainer(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	c, ok := x.containers[id]
	if !ok {
		return
	}
	delete(x.containers, id)
	if sb, ok := x.sandboxes[c.sandboxID]; ok {
		if n := containerName(c.meta, sb); x.containerNames[n] == id {
			delete(x.containerNames, n)
		}
	}
}

// sandbox finds a sandbox by ID or unique ID prefix, as containerd does.
func (x *index) sandbox(ref string) (*sandbox, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if ref == "" {
		return nil, invalidf("no sandbox ID given")
	}
	if sb, ok := x.sandboxes[ref]; ok {
		return sb, nil
	}
	var found []*sandbox
	for id, sb := range x.sandboxes {
		if strings.HasPrefix(id, ref) {
			found = append(found, sb)
		}
	}
	switch len(found) {
	case 0:
		return nil, notFoundf("sandbox %q not found", ref)
	case 1:
		return found[0], nil
	}
	return nil, invalidf("sandbox ID prefix %q matches %d sandboxes", ref, len(found))
}

// container finds a container by ID or unique ID prefix.
func (x *index) container(ref string) (*container, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if ref == "" {
		return nil, invalidf("no container ID given")
	}
	if c, ok := x.containers[ref]; ok {
		return c, nil
	}
	var found []*container
	for id, c := range x.containers {
		if strings.HasPrefix(id, ref) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, notFoundf("container %q not found", ref)
	case 1:
		return found[0], nil
	}
	return nil, invalidf("container ID prefix %q matches %d containers", ref, len(found))
}

func (x *index) listSandboxes() []*sandbox {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := slices.Collect(maps.Values(x.sandboxes))
	slices.SortFunc(out, func(a, b *sandbox) int { return a.createdAt.Compare(b.createdAt) })
	return out
}

func (x *index) listContainers(sandboxID string) []*container {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []*container
	for _, c := range x.containers {
		if sandboxID == "" || c.sandboxID == sandboxID {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *container) int { return strings.Compare(a.id, b.id) })
	return out
}

// sandboxAnnotations are the pod annotations that record a sandbox.
func sandboxAnnotations(sb *sandbox) map[string]string {
	m := map[string]string{
		pod.AnnotationOwner: Owner,
		annName:             sb.meta.GetName(),
		annNamespace:        sb.meta.GetNamespace(),
		annUID:              sb.meta.GetUid(),
		annAttempt:          strconv.FormatUint(uint64(sb.meta.GetAttempt()), 10),
		annNamespaces:       formatNamespaces(sb.namespaces),
	}
	if sb.logDir != "" {
		m[annLogDir] = sb.logDir
	}
	if sb.runtimeHandler != "" {
		m[annHandler] = sb.runtimeHandler
	}
	if sb.privileged {
		m[annPrivileged] = "true"
	}
	return m
}

func formatNamespaces(ns *runtimeapi.NamespaceOption) string {
	return fmt.Sprintf("network=%s,pid=%s,ipc=%s", ns.GetNetwork(), ns.GetPid(), ns.GetIpc())
}

func parseNamespaces(s string) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		mode := runtimeapi.NamespaceMode(runtimeapi.NamespaceMode_value[v])
		switch k {
		case "network":
			ns.Network = mode
		case "pid":
			ns.Pid = mode
		case "ipc":
			ns.Ipc = mode
		}
	}
	return ns
}

// sandboxFromManifest reads a sandbox back from its pod manifest; ok is false for a pod
// that is not rktlet's.
func sandboxFromManifest(uuid string, m *schema.PodManifest, created time.Time) (sb *sandbox, ok bool) {
	get := func(k string) string { v, _ := m.Annotations.Get(k); return v }
	if get(pod.AnnotationOwner) != Owner {
		return nil, false
	}
	attempt, _ := strconv.ParseUint(get(annAttempt), 10, 32)
	return &sandbox{
		id: uuid,
		meta: &runtimeapi.PodSandboxMetadata{Name: get(annName), Namespace: get(annNamespace), Uid: get(annUID),
			Attempt: uint32(attempt)},
		labels:         maps.Clone(map[string]string(m.UserLabels)),
		annotations:    maps.Clone(map[string]string(m.UserAnnotations)),
		createdAt:      created,
		logDir:         get(annLogDir),
		runtimeHandler: get(annHandler),
		namespaces:     parseNamespaces(get(annNamespaces)),
		privileged:     get(annPrivileged) == "true",
	}, true
}

// mountRecord is a container's mount as its app annotation keeps it.
type mountRecord struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	ReadOnly      bool   `json:"readOnly,omitempty"`
	Propagation   string `json:"propagation,omitempty"`
}

// containerAnnotations are the app annotations that record a container.
func containerAnnotations(c *container) (map[string]string, error) {
	var ms []mountRecord
	for _, m := range c.mounts {
		ms = append(ms, mountRecord{ContainerPath: m.ContainerPath, HostPath: m.HostPath, ReadOnly: m.Readonly, Propagation: m.Propagation.String()})
	}
	b, err := json.Marshal(ms)
	if err != nil {
		return nil, err
	}
	anns := map[string]string{
		annID:      c.id,
		annName:    c.meta.GetName(),
		annAttempt: strconv.FormatUint(uint64(c.meta.GetAttempt()), 10),
		annImage:   c.image,
		annLogPath: c.logPath,
		annMounts:  string(b),
		annStdio:   fmt.Sprintf("stdin=%t,stdin-once=%t,tty=%t", c.stdin, c.stdinOnce, c.tty),
	}
	if len(c.env) > 0 {
		b, err := json.Marshal(c.env)
		if err != nil {
			return nil, err
		}
		anns[annEnv] = string(b)
	}
	return anns, nil
}

// containerFromApp reads a container back from its app's entry in the pod manifest; ok is
// false for an app that is no CRI container.
func containerFromApp(sandboxID string, ra schema.RuntimeApp, imageRef string) (c *container, ok bool) {
	get := func(k string) string { v, _ := ra.Annotations.Get(k); return v }
	id := get(annID)
	if id == "" {
		return nil, false
	}
	attempt, _ := strconv.ParseUint(get(annAttempt), 10, 32)
	c = &container{
		id: id, sandboxID: sandboxID, app: string(ra.Name),
		meta:     &runtimeapi.ContainerMetadata{Name: get(annName), Attempt: uint32(attempt)},
		image:    get(annImage),
		imageRef: imageRef,
		logPath:  get(annLogPath),
	}
	if ra.App != nil {
		c.labels = maps.Clone(map[string]string(ra.App.UserLabels))
		c.annotations = maps.Clone(map[string]string(ra.App.UserAnnotations))
	}
	if e := get(annEnv); e != "" {
		_ = json.Unmarshal([]byte(e), &c.env) // a container without them has none
	}
	var ms []mountRecord
	if err := json.Unmarshal([]byte(get(annMounts)), &ms); err == nil {
		for _, m := range ms {
			c.mounts = append(c.mounts, &runtimeapi.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, Readonly: m.ReadOnly,
				Propagation: runtimeapi.MountPropagation(runtimeapi.MountPropagation_value[m.Propagation])})
		}
	}
	for kv := range strings.SplitSeq(get(annStdio), ",") {
		k, v, _ := strings.Cut(kv, "=")
		on := v == "true"
		switch k {
		case "stdin":
			c.stdin = on
		case "stdin-once":
			c.stdinOnce = on
		case "tty":
			c.tty = on
		}
	}
	return c, true
}
