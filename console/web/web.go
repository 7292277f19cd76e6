// Package web is the console in a browser: pages rendered by the server (html/template,
// assets embedded, no JavaScript toolchain) in the layout operators know from Nebraska
// and Tectonic's console: an overview of the fleet, applications with their packages and
// channels, groups with their rollout policy and live rollout, instances and their
// history, the cluster's reboot lock and flannel leases from etcd, the activity log, users
// and tokens. Pages read the store; everything they change goes through the JSON API's
// own handlers (its authentication, roles, CSRF check and audit), to which their forms
// are dispatched in-process. Pages update live: an open page holds a server-sent events
// stream and gets its live fragments re-rendered by the server whenever the console
// records a change (Hub), each sent only when it differs from what the page shows.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/console/api"
	"github.com/cairn-os/cairn/console/cluster"
	"github.com/cairn-os/cairn/console/store"
)

//go:embed templates/*.html templates/pages/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// UI serves the pages.
type UI struct {
	Store *store.Store
	// API authenticates the pages' callers, as it does its own.
	API *api.API
	// Backend serves the JSON API: the pages' forms are dispatched to it.
	Backend http.Handler
	// Hub says when the console recorded a change; live pages re-render then.
	Hub *Hub
	// Cluster is etcd's and Kubernetes' view (nil: neither is configured).
	Cluster *cluster.Watcher
	Log     *slog.Logger
	Now     func() time.Time
	// LiveInterval is the least time between two re-renders of one live page (1 s when
	// 0); Refresh re-renders without a change, for times shown as "2 min ago" (30 s when 0).
	LiveInterval, Refresh time.Duration

	quit      chan struct{} // closed by Close: live streams end
	closeOnce sync.Once

	base  *template.Template            // the layout, partials and live fragments
	pages map[string]*template.Template // each page: base and its content
	views *http.ServeMux                // page paths → views, for the live stream
}

// Page is what every page template gets.
type Page struct {
	Title   string
	Section string // the navigation entry it belongs to
	Crumbs  []Crumb
	Caller  *api.Caller
	CSRF    string
	Apps    []*store.App
	App     *store.App
	Flash   *Flash
	// Live is the page's stream of fragments ("" for a page that does not change live).
	Live  string
	Frags map[string]template.HTML
	Data  any
	Now   time.Time
	// Path is the page's own URL (path and query), where its forms come back to.
	Path    string
	Cluster cluster.Snapshot
}

// Admin reports whether the caller may change things: pages show controls only then.
func (p *Page) Admin() bool { return p.Caller != nil && p.Caller.Can(store.RoleAdmin) }

// Crumb is one step of the breadcrumbs.
type Crumb struct{ Label, URL string }

// Flash is a message shown once, on the page a form led back to.
type Flash struct {
	Kind    string `json:"k"` // ok, error
	Message string `json:"m"`
}

const flashCookie = "cairn_console_flash"

func (u *UI) log() *slog.Logger {
	if u.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return u.Log
}

func (u *UI) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

// Register adds the pages, their forms, the live stream and the assets to mux.
func (u *UI) Register(mux *http.ServeMux) error {
	if err := u.parse(); err != nil {
		return err
	}
	if u.Hub == nil {
		u.Hub = &Hub{}
	}
	u.views = http.NewServeMux()
	u.quit = make(chan struct{})
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/logo.svg", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /login", u.loginPage)
	mux.HandleFunc("POST /login", u.login)
	mux.HandleFunc("POST /logout", u.logout)
	mux.HandleFunc("GET /events/stream", u.stream)
	mux.HandleFunc("GET /{$}", u.home)
	for _, v := range u.viewList() {
		mux.Handle("GET "+v.pattern, u.servePage(v))
		u.views.Handle("GET "+v.pattern, viewMarker(v))
	}
	u.registerActions(mux)
	return nil
}

// Close ends the live streams, so that a server shutting down need not wait for them.
func (u *UI) Close() {
	u.closeOnce.Do(func() {
		if u.quit != nil {
			close(u.quit)
		}
	})
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// parse reads the templates: the base set (layout, partials, fragments) and each page on a
// copy of it.
func (u *UI) parse() error {
	base, err := template.New("base").Funcs(funcs()).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("web templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/pages/*.html")
	if err != nil {
		return err
	}
	u.base, u.pages = base, map[string]*template.Template{}
	for _, n := range names {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return fmt.Errorf("web template %s: %w", n, err)
		}
		u.pages[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return nil
}

// begin starts a page: the caller (a login first when there is none), the applications for
// the navigation, the flash message. It returns nil when it answered already.
func (u *UI) begin(w http.ResponseWriter, r *http.Request, role string) *Page {
	c, err := u.API.Authenticate(r)
	if err != nil {
		next := r.URL.RequestURI()
		target := "/login"
		if next != "/" {
			target += "?next=" + url.QueryEscape(next)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil
	}
	p := &Page{Caller: c, Now: u.now(), Path: r.URL.RequestURI()}
	if c.Session != nil {
		p.CSRF = c.Session.CSRF
	}
	p.Flash = takeFlash(w, r)
	if role != "" && !c.Can(role) {
		p.Title = "Not allowed"
		u.errorPage(w, r, p, http.StatusForbidden, fmt.Sprintf("This page is for the %s role; %s is a %s.", role, c.User.Username, c.Role))
		return nil
	}
	if p.Apps, err = u.Store.Apps(r.Context()); err != nil {
		u.errorPage(w, r, p, http.StatusInternalServerError, err.Error())
		return nil
	}
	p.Cluster = u.Cluster.Snapshot()
	return p
}

// render writes a page.
func (u *UI) render(w http.ResponseWriter, status int, name string, p *Page) {
	t := u.pages[name]
	if t == nil {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		u.log().Error("web: rendering a page", "page", name, "err", err)
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.WriteHeader(status)
	w.Write(b.Bytes()) //nolint:errcheck // the browser went away
}

// errorPage answers with a page that says what went wrong.
func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, p *Page, status int, msg string) {
	if p == nil {
		p = &Page{Now: u.now(), Path: r.URL.RequestURI()}
	}
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	p.Data = errorData{Status: status, Message: msg}
	u.render(w, status, "error", p)
}

type errorData struct {
	Status  int
	Message string
}

// fail answers a page whose data could not be read: not found, or the database failed.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, p *Page, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.Title = "Not found"
		u.errorPage(w, r, p, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrInvalid), errors.Is(err, errBadQuery):
		p.Title = "Bad request"
		u.errorPage(w, r, p, http.StatusBadRequest, err.Error())
	default:
		u.log().Error("web: page", "path", r.URL.Path, "err", err)
		u.errorPage(w, r, p, http.StatusInternalServerError, err.Error())
	}
}

var errBadQuery = errors.New("bad query")

// home is the overview of the first application (or the list of applications, when there
// is none yet or several).
func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	p := u.begin(w, r, "")
	if p == nil {
		return
	}
	if len(p.Apps) == 1 {
		http.Redirect(w, r, "/apps/"+url.PathEscape(appRef(p.Apps[0])), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/apps", http.StatusSeeOther)
}

// appRef is how URLs name an application: its product id when it has one (readable), else
// its id.
func appRef(a *store.App) string {
	if a.ProductID != "" {
		return a.ProductID
	}
	return a.ID
}

func setFlash(w http.ResponseWriter, kind, msg string) {
	b, _ := json.Marshal(Flash{Kind: kind, Message: msg})
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: "/", MaxAge: 60,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func takeFlash(w http.ResponseWriter, r *http.Request) *Flash {
	c, err := r.Cookie(flashCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil
	}
	var f Flash
	if json.Unmarshal(b, &f) != nil || f.Message == "" || (f.Kind != "ok" && f.Kind != "error") {
		return nil
	}
	return &f
}

// localPath is target if it is a path on this console (a form's "next"), else def.
func localPath(target, def string) string {
	if target == "" || !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") || strings.HasPrefix(target, "/\\") {
		return def
	}
	u, err := url.Parse(target)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return def
	}
	return target
}

type ctxKey int

const viewSlotKey ctxKey = iota

// viewSlot receives the view a page path routes to, and the request with its path values.
type viewSlot struct {
	v *view
	r *http.Request
}

func viewMarker(v *view) http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if s, ok := r.Context().Value(viewSlotKey).(*viewSlot); ok {
			s.v, s.r = v, r
		}
	})
}

// lookupView finds the view of a page URL (path and query), with its path values set.
func (u *UI) lookupView(ctx context.Context, page string) (*view, *http.Request, error) {
	pu, err := url.Parse(page)
	if err != nil || pu.Host != "" || pu.Scheme != "" || !strings.HasPrefix(pu.Path, "/") {
		return nil, nil, fmt.Errorf("%w: page %q: want a path on this console", errBadQuery, page)
	}
	slot := &viewSlot{}
	r, err := http.NewRequestWithContext(context.WithValue(ctx, viewSlotKey, slot), http.MethodGet, pu.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: page %q: %v", errBadQuery, page, err)
	}
	u.views.ServeHTTP(discard{}, r)
	if slot.v == nil {
		return nil, nil, fmt.Errorf("page %q: %w", page, store.ErrNotFound)
	}
	return slot.v, slot.r, nil
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
