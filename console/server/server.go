// Package server puts the console together: the Omaha endpoint and payload downloads
// (updates), the JSON API (api), the pages (web) and their live updates, the cluster's
// view from etcd and Kubernetes (cluster), /metrics, the rollout loop, and the development
// import of payloads from a directory. cairn-console serve runs one; tests and the e2e
// fleet start one in-process.
package server

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/console/api"
	"github.com/cairn-os/cairn/console/cluster"
	"github.com/cairn-os/cairn/console/metrics"
	"github.com/cairn-os/cairn/console/payloads"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/console/updates"
	"github.com/cairn-os/cairn/console/web"
)

// Config is what a console runs with.
type Config struct {
	Store *store.Store
	// PayloadDir holds the hosted payload files.
	PayloadDir string
	// Keys verify uploaded payloads; a payload no key verifies cannot be published.
	Keys []ed25519.PublicKey
	// BaseURL is the console's URL as machines and browsers reach it ("" : each request's
	// own host); an https URL makes the session cookie Secure.
	BaseURL string
	// MaxUpload bounds an uploaded payload (payloads.DefaultMaxSize when 0).
	MaxUpload int64
	// ReconcileInterval is how often the rollout loop marks timed-out updates and halts
	// groups past their limits (30 s when 0).
	ReconcileInterval time.Duration
	// Etcd is the fleet's etcd, for the reboot lock and flannel's leases (nil: the pages
	// say it is not configured); EtcdEndpoints name it for people.
	Etcd          *clientv3.Client
	EtcdEndpoints []string
	// Kube reads the Kubernetes nodes (nil: not configured).
	Kube *cluster.Kube
	// ClusterInterval is how often etcd and Kubernetes are read (5 s when 0).
	ClusterInterval time.Duration
	// LiveInterval is the least time between two updates of one live page (1 s when 0).
	LiveInterval time.Duration
	Log          *slog.Logger
	// Now is the clock of the rollout (time.Now when nil).
	Now func() time.Time
}

// Server is a console.
type Server struct {
	Config
	Payloads *payloads.Dir
	Updates  *updates.Service
	API      *api.API
	Metrics  *metrics.Metrics
	UI       *web.UI
	Cluster  *cluster.Watcher
	// Hub tells the live pages that something changed.
	Hub *web.Hub
	mux *http.ServeMux
}

// New makes a console from cfg.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Config: cfg, Hub: &web.Hub{}}
	s.Payloads = &payloads.Dir{Path: cfg.PayloadDir, Keys: cfg.Keys, MaxSize: cfg.MaxUpload}
	s.Metrics = metrics.New(cfg.Store, cfg.Log)
	s.Updates = &updates.Service{Store: cfg.Store, Payloads: s.Payloads, BaseURL: strings.TrimSuffix(cfg.BaseURL, "/"), Log: cfg.Log, Now: cfg.Now,
		Observe: s.Metrics.Observe}
	s.API = &api.API{Store: cfg.Store, Payloads: s.Payloads, Log: cfg.Log, SecureCookies: strings.HasPrefix(cfg.BaseURL, "https://")}
	s.Cluster = &cluster.Watcher{Etcd: cfg.Etcd, Endpoints: cfg.EtcdEndpoints, Kube: cfg.Kube, Interval: cfg.ClusterInterval,
		Changed: s.Hub.Publish, Log: cfg.Log}
	s.mux = http.NewServeMux()
	s.Updates.Register(s.mux)
	s.API.Register(s.mux)
	(&cluster.API{Watcher: s.Cluster, Store: cfg.Store}).Register(s.API, s.mux)
	s.mux.Handle("GET /metrics", s.Metrics.Handler())
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.UI = &web.UI{Store: cfg.Store, API: s.API, Backend: s.mux, Hub: s.Hub, Cluster: s.Cluster, Log: cfg.Log, Now: cfg.Now,
		LiveInterval: cfg.LiveInterval}
	if err := s.UI.Register(s.mux); err != nil {
		panic(err) // the templates are embedded: a test catches a broken one
	}
	return s
}

// Handler is the console's HTTP handler: its routes, and the live pages told of every
// request that may have changed something (an Omaha request, an API or page change that
// succeeded).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			s.mux.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		s.mux.ServeHTTP(sw, r)
		if sw.status < http.StatusBadRequest {
			s.Hub.Publish()
		}
	})
}

// statusWriter remembers the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Mux is the console's request router, for a caller that adds routes. Requests it serves
// directly do not tell the live pages of changes: serve Handler.
func (s *Server) Mux() *http.ServeMux { return s.mux }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Store.SchemaVersion(r.Context()); err != nil {
		http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n")) //nolint:errcheck // the client went away
}

// Run runs the rollout loop and the cluster's polling until ctx ends.
func (s *Server) Run(ctx context.Context) {
	iv := s.ReconcileInterval
	if iv <= 0 {
		iv = 30 * time.Second
	}
	done := make(chan struct{})
	go func() { s.Cluster.Run(ctx); close(done) }()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		if err := s.Updates.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("rollout reconcile", "err", err)
		}
		// A pass may have timed updates out or halted a group.
		s.Hub.Publish()
		select {
		case <-ctx.Done():
			<-done
			return
		case <-t.C:
		}
	}
}
