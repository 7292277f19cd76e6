// Package daemon is the update_engine command: it reads the configuration, finds the slots,
// reports how the last update's reboot went, then checks for updates on Container Linux's
// schedule, serving update_engine_client on a unix socket and com.coreos.update1 on the
// system D-Bus when there is one.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/api/dbusapi"
	"github.com/cairn-os/cairn/update-engine/apply"
	"github.com/cairn-os/cairn/update-engine/engine"
	"github.com/cairn-os/cairn/update-engine/extensions"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/osrelease"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/slots"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// Options are the daemon's paths and knobs; flags fill them.
type Options struct {
	ConfigPaths  []string
	StateDir     string
	Extensions   string // the host's activated system extensions
	ExtStore     string // their images per OS version
	Socket       string
	ESPDir       string // a mounted ESP
	ESPImage     string // or an unmounted one, reached with mtools
	Disk         string // whole disk whose partitions are numbered as in disklayout; "" = by-partuuid
	Cmdline      string
	BootEnv      string
	OSRelease    string
	MachineIDF   string
	BootIDF      string
	OEMRelease   string
	EFIVars      string
	Tries        int
	Once         bool
	Force        bool
	DBus         string // auto, on, off
	InitialCheck time.Duration
	Interval     time.Duration
	LogLevel     string
}

// Run is update_engine's main.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o Options
	var configs string
	fs := flag.NewFlagSet("update_engine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&configs, "config", strings.Join(updateconf.DefaultPaths, ","), "update.conf files, later ones override earlier ones")
	fs.StringVar(&o.StateDir, "state-dir", "/var/lib/cairn/update", "download and update records")
	fs.StringVar(&o.Extensions, "extensions", extensions.DefaultEtcDir, "the host's activated system extensions")
	fs.StringVar(&o.ExtStore, "extension-store", extensions.DefaultStoreDir, "system extension images per OS version, kept matched to the slots")
	fs.StringVar(&o.Socket, "socket", api.DefaultSocket, "unix socket for update_engine_client")
	fs.StringVar(&o.ESPDir, "esp", "/boot", "mounted EFI system partition")
	fs.StringVar(&o.ESPImage, "esp-image", "", "unmounted EFI system partition (device or image), reached with mtools; overrides -esp")
	fs.StringVar(&o.Disk, "disk", "", "whole disk holding the slots (default: find them by PARTUUID)")
	fs.StringVar(&o.Cmdline, "cmdline", "/proc/cmdline", "kernel command line naming the running slot")
	fs.StringVar(&o.BootEnv, "boot-env", "/run/cairn/boot.env", "early boot's record of the slot it opened (wins over -cmdline)")
	fs.StringVar(&o.OSRelease, "os-release", "/usr/lib/os-release", "os-release of the running version")
	fs.StringVar(&o.MachineIDF, "machine-id", "/etc/machine-id", "machine id file")
	fs.StringVar(&o.BootIDF, "boot-id", "/proc/sys/kernel/random/boot_id", "boot id file")
	fs.StringVar(&o.OEMRelease, "oem-release", "/usr/share/oem/oem-release", "OEM release file (ID=, VERSION_ID=)")
	fs.StringVar(&o.EFIVars, "efivars", "/sys/firmware/efi/efivars", "efivarfs directory")
	fs.IntVar(&o.Tries, "tries", 3, "boot attempts for a new version before it is rolled back")
	fs.BoolVar(&o.Once, "once", false, "report the last boot, check and apply once, then exit (0 updated or up to date, 1 failed)")
	fs.BoolVar(&o.Force, "force", false, "with -once: install even a version that is not newer, or one this machine rolled back from (operator only)")
	fs.StringVar(&o.DBus, "dbus", "auto", "serve com.coreos.update1 on the system bus: auto, on, off")
	fs.DurationVar(&o.InitialCheck, "initial-check", updateconf.DefaultSchedule.Initial, "delay of the first check")
	fs.DurationVar(&o.Interval, "interval", updateconf.DefaultSchedule.Interval, "delay between checks")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of this run to the file (for the benchmark)")
	checkExt := fs.Bool("check-extensions", false, "print a line for each system extension systemd-sysext would leave out on this host (another OS version), exit 1 if there is one (cairn-sysext-check.service, before the merge)")
	root := fs.String("root", "/", "with -check-extensions: the host's tree, as systemd-sysext --root")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *checkExt {
		return checkExtensions(ctx, *root, stdout, stderr)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "update_engine: -cpuprofile: %v\n", err)
			return 2
		}
		defer stop()
	}
	o.ConfigPaths = strings.Split(configs, ",")
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "update_engine: -log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	e, err := New(o, log)
	if err != nil {
		log.Error("update_engine cannot start", "err", err)
		return 1
	}
	if o.Once {
		if err := e.ReportBoot(ctx); errors.Is(err, engine.ErrOnTrial) {
			log.Info("the running version waits to be blessed good", "version", e.Version)
		} else if err != nil {
			log.Warn("reporting the boot result", "err", err)
		}
		res, err := e.Update(ctx, omaha.InstallSourceOnDemand, o.Force)
		if err != nil {
			log.Error("update failed", "err", err)
			return 1
		}
		fmt.Fprintln(stdout, [...]string{"no update", "updated: reboot to use it", "updated earlier: reboot to use it"}[res])
		return 0
	}
	if err := serve(ctx, o, e, log); err != nil {
		log.Error("update_engine", "err", err)
		return 1
	}
	return 0
}

// checkExtensions runs before systemd-sysext merges, which leaves an extension that does not
// fit the host out with no more than a debug line: a line per misfit goes to the console and
// the journal, and the unit fails, while the extensions that fit are merged all the same. An
// image in a form the check does not read gets a "not checked" line and fails nothing.
func checkExtensions(ctx context.Context, root string, stdout, stderr io.Writer) int {
	rep, err := (&extensions.Checker{Root: root}).Check(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "update_engine: -check-extensions: %v\n", err)
		return 2
	}
	for _, f := range rep.Findings {
		if l := rep.Line(f); l != "" {
			fmt.Fprintln(stdout, l)
		}
	}
	if rep.Failed() {
		return 1
	}
	return 0
}

// New wires an engine from options and configuration.
func New(o Options, log *slog.Logger) (*engine.Engine, error) {
	cfg, err := updateconf.Load(o.ConfigPaths)
	if err != nil {
		return nil, err
	}
	keys, err := payload.LoadPublicKeys(cfg.PublicKeys)
	if err != nil {
		return nil, err
	}
	version, err := osVersion(o.OSRelease)
	if err != nil {
		return nil, err
	}
	var esp slots.ESP = slots.DirESP{Root: o.ESPDir}
	if o.ESPImage != "" {
		esp = slots.MtoolsESP{Image: o.ESPImage, TmpDir: o.StateDir}
	}
	sl := &slots.Slots{ESP: esp, Cmdline: o.Cmdline, BootEnv: o.BootEnv, EFIVars: o.EFIVars}
	if o.Disk != "" {
		sl.PartitionPath = slots.DiskPartitions(o.Disk)
	}
	aleph, err := engine.AlephVersion(o.StateDir, version)
	if err != nil {
		return nil, err
	}
	sched := updateconf.DefaultSchedule
	sched.Initial, sched.Interval = o.InitialCheck, o.Interval
	if sched.Fuzz > sched.Interval/2 {
		sched.Fuzz = sched.Interval / 2
	}
	// Timeouts on every phase but the body: a download may take long, a stall is caught by
	// apply's own watchdog.
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment, DialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 30 * time.Second, ResponseHeaderTimeout: time.Minute, IdleConnTimeout: time.Minute}
	progress := cfg.ProgressInterval
	if progress == 0 {
		progress = -1 // PROGRESS_INTERVAL=0: none
	}
	var pods func(context.Context) ([]omaha.Pod, error)
	if len(cfg.PodsCommand) > 0 {
		pods = engine.CommandPods(cfg.PodsCommand)
	}
	return &engine.Engine{
		ProgressInterval: progress, Pods: pods,
		Omaha: &omaha.Client{URL: cfg.Server, HTTP: &http.Client{Transport: transport, Timeout: 2 * time.Minute}},
		Applier: &apply.Applier{Slots: sl, HTTP: &http.Client{Transport: transport}, StateDir: o.StateDir, Keys: keys,
			Board: cfg.Board, CurrentVersion: version, Tries: o.Tries, Log: log,
			Extensions: &extensions.Stager{EtcDir: o.Extensions, StoreDir: o.ExtStore, HTTP: &http.Client{Transport: transport}, Log: log}},
		Slots: sl, AppID: cfg.AppID, Group: cfg.Group, Board: cfg.Board,
		MachineID: readTrim(o.MachineIDF), BootID: braced(readTrim(o.BootIDF)), MachineAlias: machineAlias(cfg),
		OEM: keyOf(o.OEMRelease, "ID"), OEMVersion: keyOf(o.OEMRelease, "VERSION_ID"), AlephVersion: aleph,
		Version: version, Schedule: sched, Log: log,
	}, nil
}

func serve(ctx context.Context, o Options, e *engine.Engine, log *slog.Logger) error {
	trigger := make(chan struct{}, 1)
	if err := os.MkdirAll(filepath.Dir(o.Socket), 0o755); err != nil {
		return err
	}
	os.Remove(o.Socket) // a stale socket of a previous run
	ln, err := net.Listen("unix", o.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(o.Socket)
	if o.DBus != "off" {
		if err := serveDBus(ctx, e, trigger); err != nil {
			if o.DBus == "on" {
				return err
			}
			log.Info("no system D-Bus; serving the unix socket only", "socket", o.Socket, "reason", err)
		} else {
			log.Info("serving D-Bus", "name", dbusapi.Name)
		}
	}
	srv := &engine.Server{Engine: e, Trigger: trigger, UpdateCtx: ctx}
	go e.Run(ctx, trigger)
	log.Info("update_engine running", "version", e.Version, "group", e.Group, "server", e.Omaha.URL, "socket", o.Socket)
	return srv.Serve(ctx, ln)
}

func serveDBus(ctx context.Context, e *engine.Engine, trigger chan<- struct{}) error {
	conn, err := dbusapi.SystemBus()
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	return engine.ServeDBus(ctx, conn, e, trigger)
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// machineAlias is how the machine is named to the update server, as Flatcar's update_engine
// does: MACHINE_ALIAS from update.conf, else the host name.
func machineAlias(cfg *updateconf.Config) string {
	if a := strings.TrimSpace(cfg.Raw["MACHINE_ALIAS"]); a != "" {
		return a
	}
	h, _ := os.Hostname() // no name is no alias
	return h
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func braced(s string) string {
	if s == "" {
		return ""
	}
	return "{" + s + "}"
}

// keyOf is key's value in an os-release style file; "" when the file is missing or
// malformed, as the OEM's release is optional.
func keyOf(path, key string) string {
	r, _ := osrelease.ReadFile(path)
	return r[key]
}

// osVersion is the running version: VERSION_ID of the os-release at path, else its VERSION
// or IMAGE_VERSION.
func osVersion(path string) (string, error) {
	r, err := osrelease.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("os-release: %w", err)
	}
	for _, k := range []string{"VERSION_ID", "VERSION", "IMAGE_VERSION"} {
		if v := r[k]; v != "" {
			return v, nil
		}
	}
	return "", fmt.Errorf("os-release %s: no VERSION_ID", path)
}
