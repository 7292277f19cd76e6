// Package server puts the console together: the Omaha endpoint and payload downloads
// (updates), the JSON API (api), /metrics, the rollout loop, and the development import of
// payloads from a directory. cairn-console serve runs one; tests and the e2e fleet start
// one in-process.
package server

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-os/cairn/console/api"
	"github.com/cairn-os/cairn/console/metrics"
	"github.com/cairn-os/cairn/console/payloads"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/console/updates"
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
	Log               *slog.Logger
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
	mux      *http.ServeMux
}

// New makes a console from cfg.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Config: cfg}
	s.Payloads = &payloads.Dir{Path: cfg.PayloadDir, Keys: cfg.Keys, MaxSize: cfg.MaxUpload}
	s.Metrics = metrics.New(cfg.Store, cfg.Log)
	s.Updates = &updates.Service{Store: cfg.Store, Payloads: s.Payloads, BaseURL: strings.TrimSuffix(cfg.BaseURL, "/"), Log: cfg.Log, Now: cfg.Now,
		Observe: s.Metrics.Observe}
	s.API = &api.API{Store: cfg.Store, Payloads: s.Payloads, Log: cfg.Log, SecureCookies: strings.HasPrefix(cfg.BaseURL, "https://")}
	s.mux = http.NewServeMux()
	s.Updates.Register(s.mux)
	s.API.Register(s.mux)
	s.mux.Handle("GET /metrics", s.Metrics.Handler())
	s.mux.HandleFunc("GET /healthz", s.healthz)
	return s
}

// Handler is the console's HTTP handler. Mux is the same, for a caller that adds routes
// (the pages).
func (s *Server) Handler() http.Handler { return s.mux }

// Mux is the console's request router.
func (s *Server) Mux() *http.ServeMux { return s.mux }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Store.SchemaVersion(r.Context()); err != nil {
		http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n")) //nolint:errcheck // the client went away
}

// Run runs the rollout loop until ctx ends.
func (s *Server) Run(ctx context.Context) {
	iv := s.ReconcileInterval
	if iv <= 0 {
		iv = 30 * time.Second
	}
	s.Updates.Run(ctx, iv)
}
