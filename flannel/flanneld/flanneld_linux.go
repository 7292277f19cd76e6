package flanneld

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/ipmasq"
	"github.com/cairn-os/cairn/flannel/lease"
	"github.com/cairn-os/cairn/flannel/reconcile"
	"github.com/cairn-os/cairn/flannel/registry"
	"github.com/cairn-os/cairn/flannel/subnetenv"
	"github.com/cairn-os/cairn/flannel/vxlan"
	"github.com/cairn-os/cairn/internal/etcdembed"
)

// Version is set by the build.
var Version = "dev"

// DefaultNetworkConfig is written to an embedded etcd that has no network config yet.
const DefaultNetworkConfig = `{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}`

// Run is flanneld's main: it returns when ctx ends (SIGTERM), leaving the dataplane in
// place so that a restart drops no traffic.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := ParseFlags(args, Getenv, stderr)
	if err != nil {
		return err
	}
	if o.Version {
		fmt.Fprintln(stdout, Version)
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "flanneld: -log-level %q: %v\n", o.LogLevel, err)
		return ErrUsage
	}
	d := &Daemon{Opts: o, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	return d.Run(ctx)
}

// Daemon is one flanneld.
type Daemon struct {
	Opts *Options
	Log  *slog.Logger

	sm       subnets
	cfg      *config.Config
	under    Underlay
	dp       *vxlan.Dataplane
	mtu      int
	kick     chan struct{}
	mu       sync.Mutex
	ready    bool
	lastPass time.Time
	lastErr  error
}

// Run goes through the start-up steps, then serves until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	d.kick = make(chan struct{}, 1)
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"connect to " + d.source(), d.connect},
		{"read network config", d.readConfig},
		{"choose interface", d.chooseInterface},
		{"lease subnet", d.leaseSubnet},
		{"set up vxlan device", d.setupDevice},
		{"ip masquerade", d.setupMasq},
		{"write subnet file", d.writeSubnetFile},
	}
	go d.serveHealth(ctx)
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.Log.Error("flanneld failed", "step", s.name, "err", err)
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		d.Log.Warn("sd_notify", "err", err)
	} else if ok {
		d.Log.Debug("notified systemd: READY=1")
	}
	own := d.sm.Own()
	d.Log.Info("flanneld running", "subnet", own.Subnet, "public_ip", d.under.PublicIP, "device", vxlan.DeviceName(d.cfg.Backend.VNI), "mtu", d.mtu)

	var wg sync.WaitGroup
	wg.Go(func() { d.sm.Follow(ctx, d.cfg, d.onLeaseChange) })
	wg.Go(func() { d.dp.Subscribe(ctx, d.trigger) })
	d.reconcileLoop(ctx)
	wg.Wait()
	d.Log.Info("flanneld stopped; the dataplane stays in place")
	return nil
}

func (d *Daemon) trigger() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func backoffSleep(ctx context.Context, b *time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(*b):
	}
	*b = min(*b*2, 30*time.Second)
}

func (d *Daemon) connect(ctx context.Context) error {
	o := d.Opts
	if o.KubeSubnetMgr {
		return d.connectKube(ctx)
	}
	endpoints := o.EtcdEndpoints
	if len(endpoints) == 0 {
		srv, err := etcdembed.Start(ctx, etcdembed.Options{Dir: filepath.Join(o.DataDir, "etcd"),
			ClientURL: "http://127.0.0.1:2379", PeerURL: "http://127.0.0.1:2380"})
		if err != nil {
			return err
		}
		context.AfterFunc(ctx, srv.Close)
		endpoints = []string{srv.Endpoint}
		d.Log.Info("started embedded etcd", "endpoint", srv.Endpoint, "dir", filepath.Join(o.DataDir, "etcd"))
	}
	var tlsCfg *tls.Config
	if o.EtcdCAFile != "" || o.EtcdCertFile != "" {
		info := transport.TLSInfo{TrustedCAFile: o.EtcdCAFile, CertFile: o.EtcdCertFile, KeyFile: o.EtcdKeyFile}
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return fmt.Errorf("etcd TLS: %w", err)
		}
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tlsCfg,
		Username: o.EtcdUsername, Password: o.EtcdPassword, Context: ctx, DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
		Logger: zap.NewNop(),
		// gRPC's default reconnect backoff grows to two minutes; an etcd that comes back
		// should be found within seconds, before leases run out.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second}, MinConnectTimeout: 3 * time.Second})}})
	if err != nil {
		return fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	context.AfterFunc(ctx, func() { c.Close() })
	reg := &registry.Registry{Client: c, Prefix: o.EtcdPrefix, TTL: o.LeaseTTL, RenewMargin: o.RenewMargin, Log: d.Log}
	d.sm = etcdSubnets{reg}
	if len(o.EtcdEndpoints) == 0 {
		if created, err := reg.EnsureConfig(ctx, []byte(DefaultNetworkConfig)); err != nil {
			return err
		} else if created {
			d.Log.Info("wrote the default network config", "key", lease.ConfigKey(o.EtcdPrefix), "config", DefaultNetworkConfig)
		}
	}
	return nil
}

// readConfig waits for etcd and the network config, retrying with backoff: an etcd that
// is not up yet, or a config not written yet, is normal while a cluster boots.
func (d *Daemon) readConfig(ctx context.Context) error {
	b := time.Second
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cfg, err := d.sm.Config(cctx)
		cancel()
		switch {
		case err == nil:
			d.cfg = cfg
			d.Log.Info("network config", "network", cfg.Network, "subnet_len", cfg.SubnetLen, "subnet_min", cfg.SubnetMin,
				"subnet_max", cfg.SubnetMax, "backend", cfg.Backend.Type, "vni", cfg.Backend.VNI, "port", cfg.Backend.Port)
			return nil
		case errors.Is(err, config.ErrInvalid), d.Opts.KubeSubnetMgr:
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, registry.ErrNoConfig):
			d.Log.Warn("no network config yet; waiting", "key", lease.ConfigKey(d.Opts.EtcdPrefix), "retry_in", b)
		default:
			d.Log.Warn("etcd unreachable; retrying", "endpoints", strings.Join(d.Opts.EtcdEndpoints, ","), "err", err, "retry_in", b)
		}
		backoffSleep(ctx, &b)
	}
}

func (d *Daemon) chooseInterface(ctx context.Context) error {
	u, err := chooseUnderlay(d.Opts)
	if err != nil {
		return err
	}
	d.under = u
	d.mtu = d.cfg.Backend.MTU
	if d.mtu == 0 {
		d.mtu = u.MTU - vxlan.Overhead(false)
	}
	d.Log.Info("using interface", "iface", u.Name, "addr", u.Addr, "public_ip", u.PublicIP, "mtu", d.mtu)
	return nil
}

func (d *Daemon) attrs() (lease.Attrs, error) {
	mac := vxlan.DerivedMAC(d.under.PublicIP, d.cfg.Backend.VNI)
	bd, err := lease.EncodeVXLAN(lease.VXLANData{VNI: d.cfg.Backend.VNI, VtepMAC: mac})
	if err != nil {
		return lease.Attrs{}, err
	}
	return lease.Attrs{PublicIP: d.under.PublicIP, BackendType: config.BackendVXLAN, BackendData: bd}, nil
}

func (d *Daemon) leaseSubnet(ctx context.Context) error {
	attrs, err := d.attrs()
	if err != nil {
		return err
	}
	var hint netip.Prefix
	if env, err := subnetenv.Read(d.Opts.SubnetFile); err == nil && env.Network == d.cfg.Network {
		hint = env.Subnet
	}
	b := time.Second
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := d.sm.Acquire(cctx, d.cfg, attrs, hint)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, lease.ErrExhausted) || errors.Is(err, config.ErrInvalid) || ctx.Err() != nil {
			return err
		}
		d.Log.Warn("lease subnet; retrying", "err", err, "retry_in", b)
		backoffSleep(ctx, &b)
	}
}

func (d *Daemon) device() vxlan.Device {
	own := d.sm.Own()
	return vxlan.Device{VNI: d.cfg.Backend.VNI, Port: d.cfg.Backend.Port, Local: d.under.Addr, Underlay: d.under.Index,
		MTU: d.mtu, MAC: vxlan.DerivedMAC(d.under.PublicIP, d.cfg.Backend.VNI), GBP: d.cfg.Backend.GBP,
		Address: own.Subnet.Masked().Addr(), Network: d.cfg.Network, DirectRouting: d.cfg.Backend.DirectRouting}
}

// setupDevice creates the device and programs all peers known now, before subnet.env
// announces readiness.
func (d *Daemon) setupDevice(ctx context.Context) error {
	d.dp = &vxlan.Dataplane{Dev: d.device(), Log: d.Log}
	if _, err := d.dp.Ensure(ctx); err != nil {
		return err
	}
	// A peer entry the kernel refuses is logged and retried by the loop; it must not
	// keep this host off the overlay.
	d.pass(ctx)
	return nil
}

func (d *Daemon) setupMasq(ctx context.Context) error {
	if !d.Opts.IPMasq {
		return nil
	}
	return ipmasq.Apply(ipmasq.Rules(d.cfg.Network, d.sm.Own().Subnet), nil)
}

func (d *Daemon) writeSubnetFile(ctx context.Context) error {
	return subnetenv.Write(d.Opts.SubnetFile, subnetenv.Env{Network: d.cfg.Network, Subnet: d.sm.Own().Subnet, MTU: d.mtu, IPMasq: d.Opts.IPMasq})
}

// onLeaseChange handles the rare case of losing our subnet to another host while etcd was
// away: the device address, masquerade rules and subnet.env follow the new lease.
func (d *Daemon) onLeaseChange(l lease.Lease) {
	d.Log.Error("subnet changed; containers on the old subnet must be restarted", "subnet", l.Subnet)
	old := d.dp.Wanted().Address
	d.dp.SetDevice(d.device())
	if d.Opts.IPMasq {
		stale := ipmasq.Rules(d.cfg.Network, netip.PrefixFrom(old, d.cfg.SubnetLen))
		if err := ipmasq.Apply(ipmasq.Rules(d.cfg.Network, l.Subnet), stale); err != nil {
			d.Log.Error("ip-masq", "err", err)
		}
	}
	if err := d.writeSubnetFile(context.Background()); err != nil {
		d.Log.Error("write subnet file", "err", err)
	}
	d.trigger()
}

// pass is one reconcile pass: device, then routes, neighbours and FDB from the lease set. A
// failure is logged and kept for /healthz; the loop's next pass retries.
func (d *Daemon) pass(ctx context.Context) {
	dp := d.dp
	links, err := dp.Ensure(ctx)
	if err == nil {
		leases, _ := d.sm.Leases()
		h := reconcile.Host{Subnet: d.sm.Own().Subnet, VXLANLink: links.VXLAN, UnderlayLink: links.Underlay,
			VNI: d.cfg.Backend.VNI, DirectRouting: d.cfg.Backend.DirectRouting, SameL2: dp.SameL2}
		want := reconcile.Want(h, leases, d.Log)
		var have reconcile.State
		if have, err = dp.Current(links); err == nil {
			plan := reconcile.Diff(want, have)
			if !plan.Empty() {
				d.Log.Info("reconciling dataplane", "set_routes", len(plan.SetRoutes), "del_routes", len(plan.DelRoutes),
					"set_neighs", len(plan.SetNeighs), "del_neighs", len(plan.DelNeighs), "set_fdb", len(plan.SetFDB), "del_fdb", len(plan.DelFDB))
				err = dp.Apply(plan)
			}
		}
	}
	d.mu.Lock()
	d.lastErr = err
	if err == nil {
		d.lastPass = time.Now()
	}
	d.mu.Unlock()
	if err != nil {
		d.Log.Warn("reconcile pass failed; will retry", "err", err)
	}
}

func (d *Daemon) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(d.Opts.ReconcileInterval)
	defer tick.Stop()
	_, changed := d.sm.Leases()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-d.kick:
		case <-tick.C:
		}
		// Coalesce a burst of notifications (a deleted device reports many deletions).
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return
		}
		select {
		case <-d.kick:
		default:
		}
		// Take the next notification channel before the pass reads the lease set: a lease
		// that changes while the pass runs then wakes the next pass, instead of waiting for
		// the tick.
		_, changed = d.sm.Leases()
		d.pass(ctx)
	}
}

// serveHealth answers /healthz (the reconciler ran successfully recently) and /readyz
// (subnet.env has been written) on -healthz-ip:-healthz-port.
func (d *Daemon) serveHealth(ctx context.Context) {
	if d.Opts.HealthzPort == 0 {
		return
	}
	ok := func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.WriteString(w, "ok\n"); err != nil {
			d.Log.Debug("health check went away", "path", r.URL.Path, "client", r.RemoteAddr, "err", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		last, lastErr, ready := d.lastPass, d.lastErr, d.ready
		d.mu.Unlock()
		if ready && time.Since(last) > 3*d.Opts.ReconcileInterval+30*time.Second {
			http.Error(w, fmt.Sprintf("dataplane not reconciled since %s: %v", last.Format(time.RFC3339), lastErr), http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		ready := d.ready
		d.mu.Unlock()
		if !ready {
			http.Error(w, "subnet not leased yet", http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	})
	addr := net.JoinHostPort(d.Opts.HealthzIP, strconv.Itoa(d.Opts.HealthzPort))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	context.AfterFunc(ctx, func() { srv.Close() })
	d.Log.Info("serving health checks", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.Log.Error("healthz server", "addr", addr, "err", err)
	}
}
