package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/server"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/console/updates"
	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/etcdembed"
	"github.com/cairn-os/cairn/update-engine/locksmith"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// HostGateway is the host's loopback as guests reach it through qemu's user-mode network.
const HostGateway = "10.0.2.2"

// FlannelNetwork is the overlay the cluster's flanneld hands out subnets of.
const FlannelNetwork = "10.5.0.0/16"

// Fleet is what the machines of a test reach on the host's loopback: an etcd (flannel's
// leases, locksmith's reboot semaphore), the update service (cairn-console) and a release
// server.
type Fleet struct {
	Dir    string
	Images *Images
	Key    *Key

	Etcd   *etcdembed.Server
	Client *clientv3.Client
	// Console is the fleet's cairn-console, in-process: its SQLite database and payloads
	// under Dir/console, the release key's public half trusted, the application Cairn with
	// a group and channel "stable" (no rollout limits). App is that application.
	Console                            *server.Server
	App                                *store.App
	EtcdPort, ConsolePort, ReleasePort int
	servers                            []*http.Server
	stopConsole                        context.CancelFunc
	closeOnce                          sync.Once
}

// StartFleet starts the fleet's services, with state under dir. The console offers
// nothing until Offer.
func StartFleet(ctx context.Context, dir string, im *Images) (*Fleet, error) {
	f := &Fleet{Dir: dir, Images: im}
	var err error
	if f.Key, err = NewKey(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// For people: ssh -i <dir>/id_ed25519 (Host.SSHCommand).
	if err := os.WriteFile(f.KeyFile(), f.Key.PEM, 0o600); err != nil {
		return nil, err
	}
	if f.EtcdPort, err = FreePort(); err != nil {
		return nil, err
	}
	peer, err := FreePort()
	if err != nil {
		return nil, err
	}
	// etcd listens on the loopback only; guests reach it as HostGateway. Its log stays quiet:
	// closing it logs errors of its own serving goroutines.
	f.Etcd, err = etcdembed.Start(ctx, etcdembed.Options{Dir: filepath.Join(dir, "etcd"), Name: "fleet", LogLevel: "fatal",
		ClientURL: "http://127.0.0.1:" + strconv.Itoa(f.EtcdPort), PeerURL: "http://127.0.0.1:" + strconv.Itoa(peer)})
	if err != nil {
		return nil, err
	}
	f.Client, err = clientv3.New(clientv3.Config{Endpoints: []string{f.Etcd.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := f.startConsole(ctx); err != nil {
		f.Close()
		return nil, err
	}
	if f.ReleasePort, err = f.Serve(http.FileServer(http.Dir(im.Release))); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Serve serves h on a free port of the host's loopback (guests: GuestURL) until Close.
func (f *Fleet) Serve(h http.Handler) (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	f.servers = append(f.servers, s)
	go func() {
		// Serve ends with ErrServerClosed at Close. Any other end leaves the guests refused:
		// say why where go test and cairn-demo show it (the harness has no logger of its own).
		if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("fleet: a service stopped serving", "addr", l.Addr().String(), "err", err)
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startConsole starts the fleet's cairn-console.
func (f *Fleet) startConsole(ctx context.Context) error {
	kb, err := os.ReadFile(f.Images.Key)
	if err != nil {
		return err
	}
	priv, err := payload.ParsePrivateKey(kb)
	if err != nil {
		return fmt.Errorf("release key %s: %w", f.Images.Key, err)
	}
	dir := filepath.Join(f.Dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st, err := store.Open(ctx, filepath.Join(dir, "console.db"), store.Options{})
	if err != nil {
		return err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return err
	}
	// The console's pages show the fleet's etcd too: the reboot lock and flannel's leases.
	f.Console = server.New(server.Config{Store: st, PayloadDir: filepath.Join(dir, "payloads"),
		Keys: []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}, Log: slog.New(slog.DiscardHandler),
		Etcd: f.Client, EtcdEndpoints: []string{f.Etcd.Endpoint}})
	if f.App, err = f.Console.EnsureApp(ctx, updateconf.Defaults["APP_ID"], "Cairn"); err != nil {
		return err
	}
	if _, err := f.Console.EnsureGroup(ctx, f.App.ID, "stable"); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	f.stopConsole = cancel
	go f.Console.Run(rctx)
	f.ConsolePort, err = f.Serve(f.Console.Handler())
	return err
}

// ConsoleURL is where a browser on the host opens the console.
func (f *Fleet) ConsoleURL() string { return "http://127.0.0.1:" + strconv.Itoa(f.ConsolePort) + "/" }

// AddOperator makes an admin of the console with a new random password and returns the
// password, for a person to log in with.
func (f *Fleet) AddOperator(ctx context.Context, name string) (string, error) {
	pw := strings.TrimRight(base32.StdEncoding.EncodeToString(randomBytes(10)), "=")
	pw = strings.ToLower(pw[:4] + "-" + pw[4:8] + "-" + pw[8:12] + "-" + pw[12:16])
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return "", err
	}
	ctx = store.WithAudit(ctx, store.Activity{Kind: "user.created", Actor: "e2e", Message: fmt.Sprintf("created user %s (admin)", name)})
	if _, err := f.Console.Store.CreateUser(ctx, name, hash, store.RoleAdmin); err != nil {
		return "", fmt.Errorf("console operator %s: %w", name, err)
	}
	return pw, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

// Group is the group of the fleet's machines (track stable).
func (f *Fleet) Group(ctx context.Context) (*store.Group, error) {
	return f.Console.Store.Group(ctx, f.App.ID, "stable")
}

// SetRollout gives the fleet's group a rollout policy (it has none by default: every
// machine is offered an update at once).
func (f *Fleet) SetRollout(ctx context.Context, p rollout.Policy) error {
	g, err := f.Group(ctx)
	if err != nil {
		return err
	}
	ctx = store.WithAudit(ctx, store.Activity{AppID: f.App.ID, GroupID: g.ID, Kind: "group.updated", Actor: "e2e",
		Message: fmt.Sprintf("changed group %s's rollout policy: %d canaries, at most %d in flight, halting after %d failures", g.Name,
			p.Canaries, p.MaxInFlight, p.HaltErrors)})
	_, err = f.Console.Store.UpdateGroup(ctx, f.App.ID, g.ID, store.GroupSpec{Name: g.Name, Description: g.Description, Track: g.Track,
		ChannelID: g.ChannelID, Policy: p})
	return err
}

// GroupURL is the console's page of the fleet's group.
func (f *Fleet) GroupURL(ctx context.Context) (string, error) {
	g, err := f.Group(ctx)
	if err != nil {
		return "", err
	}
	return f.ConsoleURL() + "apps/" + url.PathEscape(f.App.ProductID) + "/groups/" + url.PathEscape(g.ID), nil
}

// Close stops the services.
func (f *Fleet) Close() {
	f.closeOnce.Do(func() {
		for _, s := range f.servers {
			s.Close()
		}
		if f.stopConsole != nil {
			f.stopConsole()
		}
		if f.Console != nil {
			f.Console.Store.Close()
		}
		if f.Client != nil {
			f.Client.Close()
		}
		if f.Etcd != nil {
			f.Etcd.Close()
		}
	})
}

// KeyFile is the private key that logs in to the fleet's machines as root.
func (f *Fleet) KeyFile() string { return filepath.Join(f.Dir, "id_ed25519") }

// GuestURL is the URL a guest reaches a fleet service's port at.
func GuestURL(port int) string { return "http://" + HostGateway + ":" + strconv.Itoa(port) }

// Offer uploads the payload at path to the console and publishes it on channel stable.
func (f *Fleet) Offer(path, version string) error {
	ctx := context.Background()
	p, err := f.Console.ImportFile(ctx, f.App.ID, path, "e2e")
	if err != nil {
		return fmt.Errorf("offer %s: %w", version, err)
	}
	if p.Version != version {
		return fmt.Errorf("offer %s: %s is version %s", version, path, p.Version)
	}
	if err := f.Console.Publish(ctx, f.App.ID, "stable", p, "e2e"); err != nil {
		return fmt.Errorf("offer %s: %w", version, err)
	}
	return nil
}

// Events are the events the console recorded, oldest first.
func (f *Fleet) Events() ([]*store.Event, error) {
	return f.Console.Store.Events(context.Background(), store.EventFilter{AppID: f.App.ID, Oldest: true, Limit: 10000})
}

// SetFlannelConfig writes the overlay's network config where flanneld reads it.
func (f *Fleet) SetFlannelConfig(ctx context.Context) error {
	_, err := f.Client.Put(ctx, "/coreos.com/network/config", `{"Network":"`+FlannelNetwork+`","SubnetLen":24,"Backend":{"Type":"vxlan"}}`)
	return err
}

// Semaphore reads locksmith's reboot semaphore.
func (f *Fleet) Semaphore(ctx context.Context) (*locksmith.Semaphore, error) {
	r, err := f.Client.Get(ctx, locksmith.SemaphoreKey(""))
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) == 0 {
		return locksmith.NewSemaphore(), nil
	}
	return locksmith.ParseSemaphore(r.Kvs[0].Value)
}

// ClusterLinkIP is host n's address on the cluster link.
func ClusterLinkIP(n int) string { return "192.168.76." + strconv.Itoa(10+n) }

func linkMAC(n int) string { return fmt.Sprintf("52:54:00:76:00:%02x", n) }

// ClusterConfig is host n's first-boot config in a cluster: root's ssh key, an address on the
// cluster link, flanneld against the fleet's etcd over that link, pods on the flannel network
// by default, updates from the fleet's Omaha server with reboots coordinated through etcd.
func (f *Fleet) ClusterConfig(n int) *Config {
	etcd := GuestURL(f.EtcdPort)
	return NewConfig(f.Key).
		File("/etc/hostname", 0o644, fmt.Sprintf("cairn-%d\n", n)).
		File("/etc/systemd/network/10-cluster.network", 0o644, clusterNetwork(n)).
		File("/etc/cairn/flanneld.env", 0o644, fmt.Sprintf("FLANNELD_OPTS=-etcd-endpoints=%s -iface=%s\n", etcd, ClusterLinkIP(n))).
		Unit("flanneld.service", "", true).
		File("/etc/rkt/net.d/10-flannel.conf", 0o644, `{"cniVersion":"1.0.0","name":"flannel","type":"flannel","delegate":{"bridge":"cni0"}}`+"\n").
		File("/etc/cairn/update.conf", 0o644, fmt.Sprintf(
			"GROUP=stable\nSERVER=%s%s\nREBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_ENDPOINT=%s\n", GuestURL(f.ConsolePort), updates.UpdatePath, etcd))
}

// NewHost makes a machine with its own disk over the old release in dir, booting cfg on its
// first boot (through fw_cfg, as on qemu with Flatcar).
func (f *Fleet) NewHost(name, dir string, cfg *Config, links []qemu.Link) (*Host, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	disk, err := Overlay(dir, filepath.Join(f.Images.Old, build.DiskImage), "+1G")
	if err != nil {
		return nil, err
	}
	ign := filepath.Join(dir, "config.ign")
	b, err := cfg.JSON()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(ign, b, 0o644); err != nil {
		return nil, err
	}
	return &Host{Name: name, Key: f.Key, Machine: qemu.Machine{Disk: disk, VarsDir: dir, MemoryMB: 1536,
		FwCfg: map[string]string{"opt/org.cairn/config": ign}, Links: links}}, nil
}

// ClusterLinks are the two ends of a cable between hosts 1 and 2.
func ClusterLinks() ([2][]qemu.Link, error) {
	p1, err := FreeUDPPort()
	if err != nil {
		return [2][]qemu.Link{}, err
	}
	p2, err := FreeUDPPort()
	if err != nil {
		return [2][]qemu.Link{}, err
	}
	return [2][]qemu.Link{
		{{LocalPort: p1, RemotePort: p2, MAC: linkMAC(1)}},
		{{LocalPort: p2, RemotePort: p1, MAC: linkMAC(2)}},
	}, nil
}

// Withdraw stops offering version: channel stable goes back to the newest other verified
// package (none if there is none).
func (f *Fleet) Withdraw(version string) error {
	ctx := context.Background()
	pkgs, err := f.Console.Store.Packages(ctx, f.App.ID)
	if err != nil {
		return err
	}
	var back *store.Package
	for _, p := range pkgs {
		if p.Version != version && p.Verified() && (back == nil || payload.CompareVersions(p.Version, back.Version) > 0) {
			back = p
		}
	}
	ch, err := f.Console.Store.Channel(ctx, f.App.ID, "stable")
	if err != nil {
		return err
	}
	id := ""
	if back != nil {
		id = back.ID
	}
	if err := f.Console.Store.SetChannelPackage(store.WithAudit(ctx, store.Activity{AppID: f.App.ID, Version: version, Kind: "channel.published",
		Actor: "e2e", Message: fmt.Sprintf("withdrew %s from channel stable", version)}), f.App.ID, ch.ID, id); err != nil {
		return fmt.Errorf("withdraw %s: %w", version, err)
	}
	return nil
}

// NewPayload is the new release's update payload.
func (im *Images) NewPayload() string { return filepath.Join(im.New, build.PayloadFile) }
