// Package etcdembed runs a single-node etcd: the one flanneld uses when no
// -etcd-endpoints are given, so that one host works out of the box. It listens on
// loopback only; several hosts share an external etcd cluster instead.
package etcdembed

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Options say where the member keeps its data and listens.
type Options struct {
	Dir       string // data directory, e.g. /var/lib/flannel/etcd
	ClientURL string // e.g. http://127.0.0.1:2379
	PeerURL   string // e.g. http://127.0.0.1:2380
	Name      string
	LogLevel  string // zap level; "error" keeps flanneld's log readable
}

// Server is a running member.
type Server struct {
	e *embed.Etcd
	// Endpoint is the client URL to dial.
	Endpoint string
}

// Start starts the member and waits until it serves clients.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Name == "" {
		o.Name = "flannel"
	}
	if o.LogLevel == "" {
		o.LogLevel = "error"
	}
	cu, err := url.Parse(o.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: client URL %q: %w", o.ClientURL, err)
	}
	pu, err := url.Parse(o.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: peer URL %q: %w", o.PeerURL, err)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: data dir: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = o.Name
	cfg.Dir = o.Dir
	cfg.LogLevel = o.LogLevel
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd in %s: %w", o.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", o.Dir, err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: not ready after 60s", o.Dir)
	}
	return &Server{e: e, Endpoint: "http://" + e.Clients[0].Addr().String()}, nil
}

// Close stops the member.
func (s *Server) Close() { s.e.Close() }
