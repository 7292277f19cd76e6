// Package cri is rktlet: a server of Kubernetes' Container Runtime Interface (runtime.v1's
// RuntimeService and ImageService) on Cairn's runtime, never the rkt binary.
//
// A sandbox is a rkt sandbox pod (stage0.PrepareSandbox), with no pause image: its
// supervisor, a process of its own (rktlet's binary in its supervise mode, or a lean
// stage1 binary), makes its namespaces, cgroup and networks and outlives rktlet, so that
// restarting rktlet leaves every pod running. A container is an app of that pod, added,
// started, stopped, updated and removed through the supervisor's socket (runtime/podapi).
// Images are the rkt store's: what `rkt fetch` brings the CRI lists, and the other way
// round.
//
// What rktlet knows is on disk, in the pods' manifests (the CRI metadata as annotations)
// and the apps' records: an index of sandboxes and containers is rebuilt from them when
// rktlet starts, and states (running, exited, exit codes, reasons, times) are read from
// the records when asked for, so that nothing rktlet says goes stale. A reconciler looks
// at the sandboxes every few seconds: one whose supervisor died has its containers
// reported exited and stopped, and the exits it sees become container events.
package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// Config is what a server needs from its caller.
type Config struct {
	// Dir is rkt's data directory (/var/lib/rkt): its pods and its image store.
	Dir string
	// LocalConfig and SystemConfig are rkt's configuration directories (/etc/rkt,
	// /usr/lib/rkt), whose net.d hold rkt's network configs.
	LocalConfig  string
	SystemConfig string
	// CNIConfDir is the CRI's CNI configuration directory (kubelet's /etc/cni/net.d): a
	// pod joins the first network configured there, by file name, or else in rkt's net.d.
	CNIConfDir string
	// CNIBinDirs are searched for CNI plugins before Cairn's and the distribution's.
	CNIBinDirs []string
	// StreamAddress and StreamPort are where the streaming server (exec, attach,
	// port-forward) listens: DefaultStreamAddress and a port the kernel picks ("0") by
	// default.
	StreamAddress string
	StreamPort    string
	// Supervisor is the command that runs a sandbox's supervisor: rktlet's own binary in
	// its supervise mode by default. It gets --dir, --log-level, --stop-timeout and the
	// pod's UUID, the pod's lock as fd 3 and a pipe to say it is ready as fd 4.
	Supervisor []string
	// StopTimeout is how long a sandbox's containers get between SIGTERM and SIGKILL when
	// the sandbox's supervisor is stopped with them still running.
	StopTimeout time.Duration
	// RegistryMirrors send a registry's requests elsewhere: host -> base URL
	// (registry.k8s.io -> http://127.0.0.1:5000).
	RegistryMirrors map[string]string
	// LogLevel is passed on to supervisors.
	LogLevel string
	Log      *slog.Logger
}

// Server is rktlet's CRI server. Its methods are the CRI's RPCs, one file per group.
type Server struct {
	cfg    Config
	log    *slog.Logger
	pods   *pod.Store
	images *store.Store
	host   *stage0.Host
	idx    *index
	events *broker
	http   *http.Client
	stream *streamServer
	// oomFloor is the lowest OOM score adjustment this process may give: its own unless
	// it has CAP_SYS_RESOURCE (containerd's restrict_oom_score_adj).
	oomFloor int
	// cgroup2 and swap say what the host's cgroups can limit.
	cgroup2, swap bool

	release func() error // the owner lock
	stop    context.CancelFunc
	wg      sync.WaitGroup

	fsMu    sync.Mutex
	fsUsage *runtimeapi.FilesystemUsage

	netMu   sync.Mutex
	podCIDR string

	stateMu   sync.Mutex
	lastState map[string]runtimeapi.ContainerState // for exit events

	statsMu    sync.Mutex
	cpuSamples map[string]cpuSample // for usage_nano_cores
}

// New opens rkt's pods and image store, claims them for rktlet (one rktlet per data
// directory; rkt gc leaves its stopped sandboxes alone while it runs), rebuilds its index
// from the pods on disk and starts the reconciler. Close undoes it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		cfg.Dir = "/var/lib/rkt"
	}
	if cfg.LocalConfig == "" {
		cfg.LocalConfig = "/etc/rkt"
	}
	if cfg.SystemConfig == "" {
		cfg.SystemConfig = "/usr/lib/rkt"
	}
	if cfg.CNIConfDir == "" {
		cfg.CNIConfDir = "/etc/cni/net.d"
	}
	if cfg.StreamAddress == "" {
		cfg.StreamAddress = DefaultStreamAddress
	}
	if cfg.StreamPort == "" {
		cfg.StreamPort = "0"
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if len(cfg.Supervisor) == 0 {
		cfg.Supervisor = []string{"/proc/self/exe", "supervise"}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	s := &Server{cfg: cfg, log: cfg.Log, idx: newIndex(), events: newBroker(), lastState: map[string]runtimeapi.ContainerState{},
		cpuSamples: map[string]cpuSample{}}
	s.pods = pod.NewStore(cfg.Dir)
	s.pods.Alive = func(p *pod.Pod) bool { return stage1.PodAlive(p.Path()) }
	release, err := s.pods.ClaimOwner(Owner)
	if err != nil {
		return nil, err
	}
	s.release = release
	fail := func(err error) (*Server, error) { return nil, errors.Join(err, release()) }
	st, err := store.Open(cfg.Dir)
	if err != nil {
		return fail(err)
	}
	st.Log = s.log
	podsDir := s.pods.Dir
	st.InUse = func(context.Context) ([]string, error) { return stage1.ImagesInUse(podsDir) }
	s.images = st
	mirrors, err := parseMirrors(cfg.RegistryMirrors)
	if err != nil {
		return fail(err)
	}
	s.http = &http.Client{Transport: &mirrorTransport{base: http.DefaultTransport, mirrors: mirrors}}
	s.host = &stage0.Host{
		Pods:   s.pods,
		Images: &storeImages{st: st, log: s.log},
		// The CRI's configs first: a name they define wins over rkt's.
		NetConfDirs:   []string{cfg.CNIConfDir, filepath.Join(cfg.LocalConfig, "net.d"), filepath.Join(cfg.SystemConfig, "net.d")},
		NetPluginDirs: append(append([]string(nil), cfg.CNIBinDirs...), network.DefaultPluginDirs...),
		Log:           s.log,
	}
	s.oomFloor = oomFloor()
	s.cgroup2, s.swap = cgroupFeatures()
	if err := s.rebuild(ctx); err != nil {
		return fail(err)
	}
	if s.stream, err = s.startStreaming(cfg.StreamAddress, cfg.StreamPort); err != nil {
		return fail(err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.wg.Go(func() { s.reconcileLoop(rctx) })
	return s, nil
}

// Close stops the reconciler and the streaming server (ending its sessions) and gives up
// the owner lock. Sandboxes go on running.
func (s *Server) Close() error {
	s.stop()
	s.wg.Wait()
	s.events.close()
	return errors.Join(s.stream.close(), s.release())
}

// Register puts the server's services on g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, runtimeService{Server: s})
	runtimeapi.RegisterImageServiceServer(g, imageService{Server: s})
}

// NewGRPCServer is a gRPC server whose calls answer every error with a status and every
// panic with Internal, and are logged.
func NewGRPCServer(log *slog.Logger) *grpc.Server {
	return grpc.NewServer(
		grpc.ChainUnaryInterceptor(unaryInterceptor(log)),
		grpc.ChainStreamInterceptor(streamInterceptor(log)),
		grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20),
	)
}

// runtimeService and imageService are the server as each service. The Unimplemented
// servers, one level deeper than the server's own methods, answer only the RPCs that
// rktlet does not implement.
type runtimeService struct {
	*Server
	unimplementedRuntime
}

type imageService struct {
	*Server
	unimplementedImage
}

type unimplementedRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

type unimplementedImage struct {
	runtimeapi.UnimplementedImageServiceServer
}

// rebuild reads rktlet's sandboxes and containers from the pods on disk. A sandbox that
// never got past its preparation (rktlet stopped in the middle of RunPodSandbox) is
// removed.
func (s *Server) rebuild(ctx context.Context) error {
	pods, err := s.pods.List()
	if err != nil {
		return err
	}
	for _, p := range pods {
		m, err := p.Manifest()
		if err != nil {
			continue
		}
		sb, ok := sandboxFromManifest(p.UUID, m, p.Time(pod.CreatedFile))
		if !ok {
			continue
		}
		switch p.State() {
		case pod.AbortedPrepare:
			s.log.Info("removing a sandbox whose start was cut short", "sandbox", p.UUID)
			if err := s.pods.Remove(ctx, p.UUID, s.cleaner()); err != nil {
				s.log.Warn("remove sandbox", "sandbox", p.UUID, "err", err)
			}
			continue
		case pod.Embryo, pod.Preparing, pod.Prepared, pod.Garbage, pod.Deleting:
			continue
		}
		s.idx.addSandbox(sb)
		opts, _ := stage1.ReadOptions(p.Path())
		for _, ra := range m.Apps {
			imageRef := ""
			if opts != nil {
				for _, a := range opts.Apps {
					if a.Name == string(ra.Name) {
						imageRef = a.ImageID
					}
				}
			}
			if c, ok := containerFromApp(p.UUID, ra, imageRef); ok {
				s.idx.addContainer(c)
				s.idx.containerNames[containerName(c.meta, sb)] = c.id
			}
		}
	}
	s.log.Info("rktlet index rebuilt", "sandboxes", len(s.idx.sandboxes), "containers", len(s.idx.containers))
	return nil
}

// cleaner is what gc and rm call to take down what a pod left behind.
func (s *Server) cleaner() pod.Cleaner {
	return func(ctx context.Context, p *pod.Pod) error { return stage1.CleanWithLog(ctx, p.Path(), s.log) }
}

// network is the CNI network a pod joins: the first config file, by name, in the CRI's
// configuration directory, else in rkt's net.d ("" when there is none), as kubelet and
// containerd pick theirs. Its reason says why there is none.
func (s *Server) network() (name, reason string) {
	dirs := []string{s.cfg.CNIConfDir, filepath.Join(s.cfg.LocalConfig, "net.d")}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			ext := filepath.Ext(e.Name())
			if e.IsDir() || (ext != ".conf" && ext != ".conflist" && ext != ".json") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			list, err := network.ParseConf(b)
			if err != nil {
				reason = fmt.Sprintf("%s: %v", filepath.Join(dir, e.Name()), err)
				continue
			}
			return list.Name, ""
		}
	}
	if reason == "" {
		reason = "no network config found in " + strings.Join(dirs, " or ")
	}
	return "", reason
}

// oomFloor is the lowest OOM score adjustment this process may set.
func oomFloor() int {
	if hasCapSysResource() {
		return -1000
	}
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return v
}

// parseMirrors checks the registry mirrors: a host name and an http(s) base URL each.
func parseMirrors(m map[string]string) (map[string]*url.URL, error) {
	out := map[string]*url.URL{}
	for host, base := range m {
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("registry mirror %s=%s: want an http or https URL", host, base)
		}
		if host == "" || strings.ContainsAny(host, "/ ") {
			return nil, fmt.Errorf("registry mirror %s=%s: want a registry host name", host, base)
		}
		out[host] = u
	}
	return out, nil
}

// mirrorTransport sends a mirrored registry's requests to its mirror.
type mirrorTransport struct {
	base    http.RoundTripper
	mirrors map[string]*url.URL
}

func (t *mirrorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if m, ok := t.mirrors[req.URL.Host]; ok {
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host = m.Scheme, m.Host
		r.URL.Path = strings.TrimSuffix(m.Path, "/") + req.URL.Path
		r.Host = m.Host
		return t.base.RoundTrip(r)
	}
	return t.base.RoundTrip(req)
}
