// Package stage0 prepares and runs pods, as rkt's stage0 did. From a Config, plain values
// that the command line fills (the apps and their images, volumes, mounts, networks,
// isolators, environment, annotations), Prepare resolves each image through the caller's
// Images, merges the image's app with the overrides, checks everything that can be checked,
// and only then creates the pod directory and writes the pod manifest and stage1's options
// into it. PrepareApp is that work for one app, so that an app can also join a pod that
// exists. Run hands a prepared pod to stage1, which runs it.
package stage0

import (
	"context"
	"log/slog"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/pod"
)

// Images finds the image an app names: an image ID, a name, a path or a URL. The command
// line's implementation looks in the store and fetches by the pull policy.
type Images interface {
	Image(ctx context.Context, ref string) (*image.Image, error)
}

// Host is what preparing pods needs from the machine, set by the caller: where pods live,
// how images are found, where network configs and plugins are.
type Host struct {
	Pods   *pod.Store
	Images Images
	// NetConfDirs are the directories of network configs, highest precedence first
	// (/etc/rkt/net.d, then /usr/lib/rkt/net.d); NetPluginDirs where CNI plugins are found,
	// first match wins.
	NetConfDirs   []string
	NetPluginDirs []string
	// Environ is the environment that Config.InheritEnv passes on (the caller's, in rkt).
	Environ []string
	Log     *slog.Logger
}

func (h *Host) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Network is a pod's network and name service: rkt's --net, --hostname, --dns, --dns-search,
// --dns-opt, --dns-domain and --hosts-entry.
type Network struct {
	// Net are --net values: none, host, default, all, or network names from net.d with
	// per-network arguments (mynet:IP=10.1.1.7); none given means default.
	Net      []string
	Hostname string // empty: rkt-<uuid>
	// DNS are name servers, or one of host (the host's resolv.conf) and none (not even what
	// a network answers).
	DNS       []string
	DNSSearch []string
	DNSOpt    []string
	DNSDomain string
	// HostsEntries are IP=HOST pairs for the pod's /etc/hosts, or host alone (the host's).
	HostsEntries []string
}

// Config is a pod to prepare.
type Config struct {
	Apps []App
	// PodManifest, instead of Apps, is the whole pod (rkt's --pod-manifest, read with
	// ParsePodManifest): its apps, volumes, mounts, ports and annotations. Only the settings
	// a manifest has no field for go with it: Network, Interactive, NoOverlay, PrivateUsers,
	// InsecureSeccomp and UUIDFileSave.
	PodManifest *schema.PodManifest

	// Volumes are the pod's volumes (--volume).
	Volumes []types.Volume
	// Mounts go into every app (--mount before the first image); an app's own mount of the
	// same path wins.
	Mounts []schema.Mount
	// Ports forward host ports to ports the apps' images declare: NAME:[HOSTIP:]HOSTPORT.
	Ports []string
	Network

	// Defaults for every app; an app's own setting wins.
	Memory     string   // memory limit, e.g. 64M
	CPU        string   // CPU limit in cores or millicores, e.g. 500m
	CapsRetain []string // capabilities an app keeps (replaces the default set)
	CapsRemove []string // capabilities dropped from the default set
	Seccomp    *Seccomp
	// ReadOnlyRootFS mounts every app's root read-only, unless the app says otherwise.
	ReadOnlyRootFS bool
	// The environment of every app, in rkt's order: the image's; then, with InheritEnv, the
	// variables of Host.Environ that the image does not set; then those of EnvFiles (files
	// of NAME=VALUE lines), then Env (NAME=VALUE), each over what came before; an app's own
	// Env last.
	InheritEnv bool
	EnvFiles   []string
	Env        []string
	// UserAnnotations and UserLabels are the pod's, free-form, for the user.
	UserAnnotations map[string]string
	UserLabels      map[string]string

	Interactive  bool // the one app gets the caller's terminal and stdin
	NoOverlay    bool // copy the image trees instead of stacking them with overlayfs
	PrivateUsers bool // the apps run in a user namespace of their own
	// InsecureSeccomp (--insecure-options=seccomp) runs apps without a seccomp filter.
	InsecureSeccomp bool
	// UUIDFileSave is a file to write the pod's UUID to once the pod is prepared.
	UUIDFileSave string
}

// App is one app of a pod: an image and what replaces the image's own settings.
type App struct {
	Image string // what Images resolves: an image ID, name, path or URL
	Name  string // the app's name in the pod; default: from the image's name
	// Exec replaces the image's command (its arguments included).
	Exec string
	// Args are appended to the command (rkt's "IMAGE -- ARGS").
	Args  []string
	User  string // name or number, resolved in the image
	Group string
	// SupplementaryGIDs, when not nil, replace the image's supplementary groups.
	SupplementaryGIDs []int
	WorkingDir        string
	Env               []string       // NAME=VALUE, over the pod's
	Mounts            []schema.Mount // pod volumes mounted into this app
	// ReadOnlyRootFS, when set, says whether the app's root is read-only.
	ReadOnlyRootFS *bool
	// UserAnnotations and UserLabels, when not nil, replace the image's.
	UserAnnotations map[string]string
	UserLabels      map[string]string
	// Annotations are the app's in the pod manifest (names are appc identifiers), beside
	// the one that keeps its image's store ID.
	Annotations map[string]string

	Memory     string
	CPU        string
	CapsRetain []string
	CapsRemove []string
	Seccomp    *Seccomp
}

// Seccomp is a seccomp filter that replaces the default one (rkt's --seccomp).
type Seccomp struct {
	Mode  string   // remove (deny Set) or retain (allow only Set)
	Errno string   // what a denied call returns, e.g. ENOSYS; EPERM when empty
	Set   []string // syscall names and @sets (@rkt/default-blacklist, ...)
}
