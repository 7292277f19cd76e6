package cri

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/klog/v2"

	"github.com/cairn-os/cairn/runtime/cli"
)

// DefaultListen is where rktlet serves the CRI unless told otherwise.
const DefaultListen = "unix:///run/rktlet/rktlet.sock"

// Run is the rktlet command: it serves the CRI on -listen (or on the socket systemd
// passes it), says READY=1 to systemd once it serves, and stops on ctx's end (SIGTERM),
// leaving every sandbox running. `rktlet supervise UUID` is the hidden mode a sandbox's
// supervisor runs in, `rktlet pause` the holder of a sandbox's shared PID namespace. It
// returns the process's exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "supervise":
			return Supervise(ctx, args[1:], stderr)
		case "pause":
			return Pause(ctx)
		}
	}
	fs := flag.NewFlagSet("rktlet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", DefaultListen, "where to serve the CRI: unix://PATH (systemd's socket, when it passes one, wins)")
	var cfg Config
	fs.StringVar(&cfg.Dir, "dir", "/var/lib/rkt", "rkt's data directory: its pods and image store")
	fs.StringVar(&cfg.LocalConfig, "local-config", "/etc/rkt", "rkt's local configuration directory (net.d)")
	fs.StringVar(&cfg.SystemConfig, "system-config", "/usr/lib/rkt", "rkt's system configuration directory (net.d)")
	fs.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "/etc/cni/net.d", "CNI network configurations: pods join the first, by file name")
	var binDirs, mirrors listFlag
	fs.Var(&binDirs, "cni-bin-dir", "a directory of CNI plugins, searched before Cairn's and the distribution's (repeatable, or comma-separated)")
	fs.StringVar(&cfg.StreamAddress, "stream-address", DefaultStreamAddress, "the address the streaming server (exec, attach, port-forward) listens on")
	fs.StringVar(&cfg.StreamPort, "stream-port", "0", "the streaming server's port (0: one the kernel picks)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", 10*time.Second, "time a stopped sandbox's containers get between SIGTERM and SIGKILL")
	fs.Var(&mirrors, "registry-mirror", "send a registry's requests elsewhere: HOST=URL (repeatable)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rktlet: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "rktlet %s (CRI v1)\n", cli.Version)
		return 0
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "rktlet:", err)
		return 2
	}
	cfg.Log = log
	// The streaming server (k8s.io/cri-streaming) logs its errors through klog.
	klog.SetSlogLogger(log.With("component", "streaming"))
	cfg.CNIBinDirs = binDirs
	cfg.RegistryMirrors = map[string]string{}
	for _, m := range mirrors {
		host, u, ok := strings.Cut(m, "=")
		if !ok {
			fmt.Fprintf(stderr, "rktlet: -registry-mirror %q: want HOST=URL\n", m)
			return 2
		}
		cfg.RegistryMirrors[host] = u
	}
	ln, err := listener(*listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	srv, err := New(ctx, cfg)
	if err != nil {
		ln.Close()
		log.Error("start", "err", err)
		return 1
	}
	g := NewGRPCServer(log)
	srv.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(ln) }()
	log.Info("rktlet serving the CRI", "listen", ln.Addr().String(), "stream", srv.StreamAddr().String(), "dir", cfg.Dir, "version", cli.Version)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify", "err", err)
	}
	code := 0
	select {
	case <-ctx.Done():
		log.Info("rktlet stopping; sandboxes go on running")
	case err := <-served:
		log.Error("serve", "err", err)
		code = 1
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		g.Stop()
	}
	if err := srv.Close(); err != nil {
		log.Warn("close", "err", err)
	}
	return code
}

// listener is systemd's socket when it passes one (socket activation), else a unix
// socket at addr's path: made with its directory (0700), a stale socket file replaced,
// only root may connect (0600).
func listener(addr string) (net.Listener, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("systemd sockets: %w", err)
	}
	for _, ln := range lns {
		if ln != nil {
			return ln, nil
		}
	}
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("-listen %q: want unix:///ABSOLUTE/PATH", addr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another server answers there", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// listFlag is a flag that may repeat, each value a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
