// Package locksmithcli holds the locksmithd and locksmithctl commands: the reboot
// coordinator daemon and the operator's tool for the reboot semaphore. locksmithd's
// kubernetes strategy is locksmith/kube, reached with a kubeconfig.
package locksmithcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/api/dbusapi"
	"github.com/cairn-os/cairn/update-engine/locksmith"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// DefaultNeedRebootFile is the flag locksmithctl send-need-reboot raises for locksmithd.
const DefaultNeedRebootFile = "/run/cairn/locksmith/need-reboot"

type common struct {
	configs   string
	endpoints string
	group     string
	machineID string
	flagFile  string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.configs, "config", strings.Join(updateconf.DefaultPaths, ","), "update.conf files")
	fs.StringVar(&c.endpoints, "endpoint", "", "etcd endpoints, comma separated (default LOCKSMITHD_ENDPOINT or http://127.0.0.1:2379)")
	fs.StringVar(&c.group, "group", "", "reboot group (default LOCKSMITHD_GROUP)")
	fs.StringVar(&c.machineID, "machine-id", "/etc/machine-id", "file holding this machine's id")
	fs.StringVar(&c.flagFile, "need-reboot-file", DefaultNeedRebootFile, "flag file of send-need-reboot")
}

func (c *common) config() (*updateconf.Config, error) {
	cfg, err := updateconf.Load(strings.Split(c.configs, ","))
	if err != nil {
		return nil, err
	}
	if c.endpoints != "" {
		cfg.EtcdEndpoints = strings.Split(c.endpoints, ",")
	}
	if len(cfg.EtcdEndpoints) == 0 {
		cfg.EtcdEndpoints = []string{"http://127.0.0.1:2379"}
	}
	if c.group != "" {
		cfg.LockGroup = c.group
	}
	return cfg, nil
}

func (c *common) id() (string, error) {
	b, err := os.ReadFile(c.machineID)
	if err != nil {
		return "", fmt.Errorf("machine id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func etcdLock(cfg *updateconf.Config, id string) (*locksmith.EtcdLock, func(), error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.EtcdEndpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("etcd %v: %w", cfg.EtcdEndpoints, err)
	}
	return &locksmith.EtcdLock{Client: cli, Key: locksmith.SemaphoreKey(cfg.LockGroup), ID: id}, func() { cli.Close() }, nil
}

// RunCtl is locksmithctl.
func RunCtl(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("locksmithctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	format := fs.String("format", "text", "text or json (status)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: locksmithctl [flags] status | lock [ID] | unlock [ID] | set-max N | send-need-reboot")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	if err := ctl(ctx, &c, fs.Args(), *format, stdout); err != nil {
		fmt.Fprintf(stderr, "locksmithctl: %v\n", err)
		return 1
	}
	return 0
}

func ctl(ctx context.Context, c *common, args []string, format string, stdout io.Writer) error {
	if args[0] == "send-need-reboot" {
		if err := os.MkdirAll(filepath.Dir(c.flagFile), 0o755); err != nil {
			return err
		}
		return atomicfile.WriteFile(c.flagFile, []byte("need reboot\n"), 0o644)
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	id := ""
	if len(args) > 1 {
		id = args[1]
	} else if args[0] == "lock" || args[0] == "unlock" {
		if id, err = c.id(); err != nil {
			return err
		}
	}
	l, closeFn, err := etcdLock(cfg, id)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch args[0] {
	case "status":
		s, err := l.Get(ctx)
		if err != nil {
			return err
		}
		if format == "json" {
			return json.NewEncoder(stdout).Encode(s)
		}
		fmt.Fprintf(stdout, "Available: %d\nMax: %d\n", s.Semaphore, s.Max)
		if len(s.Holders) > 0 {
			fmt.Fprintln(stdout, "\nMACHINE ID")
			for _, h := range s.Holders {
				fmt.Fprintln(stdout, h)
			}
		}
		return nil
	case "lock":
		return l.LockHolder(ctx, id)
	case "unlock":
		return l.UnlockHolder(ctx, id)
	case "set-max":
		if len(args) != 2 {
			return errors.New("set-max needs a number")
		}
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("set-max %q: %w", args[1], err)
		}
		return l.SetMax(ctx, n)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// RunDaemon is locksmithd.
func RunDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("locksmithd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	socket := fs.String("socket", api.DefaultSocket, "update_engine's socket")
	rebootCmd := fs.String("reboot-command", "systemctl reboot", "how to reboot")
	poll := fs.Duration("poll", 30*time.Second, "how often to look at the update engine (without D-Bus) and retry the lock")
	dbusMode := fs.String("dbus", "auto", "follow update_engine's StatusUpdate signal on the system bus: auto (the socket if there is no bus), on, off (the socket)")
	kubeconfig := fs.String("kubeconfig", "", "REBOOT_STRATEGY=kubernetes: the kubeconfig of locksmithd's ServiceAccount (default LOCKSMITHD_KUBECONFIG)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := c.config()
	if err != nil {
		log.Error("locksmithd", "err", err)
		return 1
	}
	win, err := locksmith.ParseWindow(cfg.WindowStart, cfg.WindowLength)
	if err != nil {
		log.Error("locksmithd", "err", err)
		return 1
	}
	switch *dbusMode {
	case "auto", "on", "off":
	default:
		fmt.Fprintf(stderr, "locksmithd: -dbus %q: want auto, on or off\n", *dbusMode)
		return 2
	}
	status := &engineStatus{socket: *socket, log: log}
	d := &locksmith.Daemon{Strategy: cfg.RebootStrategy, Window: win, Poll: *poll, Log: log,
		NeedReboot: func(ctx context.Context) (bool, error) {
			if _, err := os.Stat(c.flagFile); err == nil {
				return true, nil
			}
			return status.needReboot(ctx)
		},
		Reboot: func(ctx context.Context) error {
			f := strings.Fields(*rebootCmd)
			cmd := exec.CommandContext(ctx, f[0], f[1:]...)
			cmd.Stdout, cmd.Stderr = stderr, stderr
			return cmd.Run()
		}}
	switch cfg.RebootStrategy {
	case updateconf.StrategyEtcdLock:
		id, err := c.id()
		if err != nil {
			log.Error("locksmithd", "err", err)
			return 1
		}
		l, closeFn, err := etcdLock(cfg, id)
		if err != nil {
			log.Error("locksmithd", "err", err)
			return 1
		}
		defer closeFn()
		d.Locker = l
	case updateconf.StrategyFleetLock:
		id, err := c.id()
		if err != nil {
			log.Error("locksmithd", "err", err)
			return 1
		}
		d.Locker = &locksmith.FleetLock{URL: cfg.FleetLockURL, Group: cfg.LockGroup, ID: id}
	case updateconf.StrategyKubernetes:
		k, err := kubeStrategy(cfg.Kube, *kubeconfig, *socket, log)
		if err != nil {
			log.Error("locksmithd", "err", err)
			return 1
		}
		d.Locker, d.Retry = k, cfg.Kube.DrainRetry
	}
	if *dbusMode != "off" && cfg.RebootStrategy != updateconf.StrategyOff {
		statuses, err := watchBus(ctx)
		switch {
		case err == nil:
			d.Changed = status.follow(statuses)
			log.Info("following update_engine's StatusUpdate on the system bus", "name", dbusapi.Name)
		case *dbusMode == "on":
			log.Error("locksmithd", "err", err)
			return 1
		default:
			log.Info("no system D-Bus; asking update_engine's socket", "socket", *socket, "poll", *poll, "reason", err)
		}
	}
	log.Info("locksmithd running", "strategy", cfg.RebootStrategy, "window", cfg.WindowStart, "length", cfg.WindowLength)
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("locksmithd", "err", err)
		return 1
	}
	return 0
}

// watchBus follows update_engine's status on the system bus until ctx ends.
func watchBus(ctx context.Context) (<-chan api.Status, error) {
	conn, err := dbusapi.SystemBus()
	if err != nil {
		return nil, err
	}
	statuses, err := dbusapi.Watch(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	return statuses, nil
}
