// Package api is the console's JSON API under /api/v1: applications, channels, groups (their
// policy, pause, resume, approval), packages (upload, publish), instances, activity, the
// fleet summary, users and API tokens. A caller is a browser with a session cookie (login
// with a user name and password) or a script with "Authorization: Bearer <token>"; each
// route wants a role (viewer reads, admin changes). A cookie's unsafe requests must carry
// the session's CSRF token (X-CSRF-Token, or a csrf_token form field), and cross-origin
// browser requests are refused. Every change is written to the activity log with the user
// who made it, in the change's own transaction.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/payloads"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

// Prefix is where the API is served.
const Prefix = "/api/v1"

// SessionCookie is the name of the session cookie.
const SessionCookie = "cairn_console_session"

// API serves the JSON API.
type API struct {
	Store    *store.Store
	Payloads *payloads.Dir
	Log      *slog.Logger
	// SessionTTL is how long a login lasts (12 hours when 0).
	SessionTTL time.Duration
	// SecureCookies marks the session cookie Secure (the console is served over HTTPS).
	SecureCookies bool
}

func (a *API) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// Caller is who made a request.
type Caller struct {
	User *store.User
	// Role is the user's, or the token's (which may be less than its owner's).
	Role    string
	Session *store.Session // nil for a token
	Token   *store.Token   // nil for a session
}

// Can reports whether the caller has the role.
func (c *Caller) Can(role string) bool {
	return c != nil && (c.Role == store.RoleAdmin || c.Role == role)
}

type callerKey struct{}

// CallerOf is the authenticated caller of a request served by the API (nil if none).
func CallerOf(r *http.Request) *Caller {
	c, _ := r.Context().Value(callerKey{}).(*Caller)
	return c
}

// handler is an API handler: its error is written as JSON with the status it maps to.
type handler func(w http.ResponseWriter, r *http.Request, c *Caller) error

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	cop := http.NewCrossOriginProtection()
	route := func(pattern, role string, h handler) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+Prefix+path, cop.Handler(a.wrap(role, h)))
	}
	route("POST /login", "", a.login)
	route("POST /logout", store.RoleViewer, a.logout)
	route("GET /session", store.RoleViewer, a.session)

	route("GET /apps", store.RoleViewer, a.listApps)
	route("POST /apps", store.RoleAdmin, a.createApp)
	route("GET /apps/{app}", store.RoleViewer, a.getApp)
	route("PUT /apps/{app}", store.RoleAdmin, a.updateApp)
	route("DELETE /apps/{app}", store.RoleAdmin, a.deleteApp)
	route("GET /apps/{app}/summary", store.RoleViewer, a.summary)

	route("GET /apps/{app}/channels", store.RoleViewer, a.listChannels)
	route("POST /apps/{app}/channels", store.RoleAdmin, a.createChannel)
	route("GET /apps/{app}/channels/{channel}", store.RoleViewer, a.getChannel)
	route("PUT /apps/{app}/channels/{channel}", store.RoleAdmin, a.updateChannel)
	route("DELETE /apps/{app}/channels/{channel}", store.RoleAdmin, a.deleteChannel)

	route("GET /apps/{app}/groups", store.RoleViewer, a.listGroups)
	route("POST /apps/{app}/groups", store.RoleAdmin, a.createGroup)
	route("GET /apps/{app}/groups/{group}", store.RoleViewer, a.getGroup)
	route("PUT /apps/{app}/groups/{group}", store.RoleAdmin, a.updateGroup)
	route("DELETE /apps/{app}/groups/{group}", store.RoleAdmin, a.deleteGroup)
	route("POST /apps/{app}/groups/{group}/pause", store.RoleAdmin, a.pauseGroup)
	route("POST /apps/{app}/groups/{group}/resume", store.RoleAdmin, a.resumeGroup)
	route("POST /apps/{app}/groups/{group}/approve", store.RoleAdmin, a.approveGroup)

	route("GET /apps/{app}/packages", store.RoleViewer, a.listPackages)
	route("POST /apps/{app}/packages", store.RoleAdmin, a.uploadPackage)
	route("GET /apps/{app}/packages/{package}", store.RoleViewer, a.getPackage)
	route("PUT /apps/{app}/packages/{package}", store.RoleAdmin, a.updatePackage)
	route("DELETE /apps/{app}/packages/{package}", store.RoleAdmin, a.deletePackage)
	route("POST /apps/{app}/packages/{package}/publish", store.RoleAdmin, a.publishPackage)

	route("GET /apps/{app}/instances", store.RoleViewer, a.listInstances)
	route("GET /apps/{app}/instances/{instance}", store.RoleViewer, a.getInstance)
	route("GET /apps/{app}/events", store.RoleViewer, a.listEvents)

	route("GET /activity", store.RoleViewer, a.listActivity)

	route("GET /users", store.RoleAdmin, a.listUsers)
	route("POST /users", store.RoleAdmin, a.createUser)
	route("PUT /users/{user}", store.RoleAdmin, a.updateUser)
	route("DELETE /users/{user}", store.RoleAdmin, a.deleteUser)
	route("GET /tokens", store.RoleAdmin, a.listTokens)
	route("POST /tokens", store.RoleAdmin, a.createToken)
	route("DELETE /tokens/{token}", store.RoleAdmin, a.deleteToken)
}

// HandlerFunc is a handler of a route another part of the console adds to the API (Handle):
// its error is written as JSON with the status it maps to.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, c *Caller) error

// Handle adds a route under Prefix (pattern "METHOD /path") with the API's authentication,
// role, CSRF and cross-origin checks and its error responses: for the console's parts that
// are not the store's, such as the reboot lock in etcd.
func (a *API) Handle(mux *http.ServeMux, pattern, role string, h HandlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	mux.Handle(method+" "+Prefix+path, http.NewCrossOriginProtection().Handler(a.wrap(role, handler(h))))
}

// WriteJSON writes v as an API answer.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

// Actor is who the caller is in the activity log: the user, and the token used.
func (c *Caller) Actor() string {
	s := c.User.Username
	if c.Token != nil {
		s += " (token " + c.Token.Name + ")"
	}
	return s
}

// wrap authenticates the caller, checks the role and the CSRF token, and writes errors.
func (a *API) wrap(role string, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var c *Caller
		if role != "" {
			var err error
			c, err = a.Authenticate(r)
			if err != nil {
				writeError(w, r, a.log(), err)
				return
			}
			if !c.Can(role) {
				writeError(w, r, a.log(), fmt.Errorf("%w: %s needs the %s role; %s is a %s", errForbidden, r.Pattern, role, c.User.Username, c.Role))
				return
			}
			if err := checkCSRF(r, c); err != nil {
				writeError(w, r, a.log(), err)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
		}
		if err := h(w, r, c); err != nil {
			writeError(w, r, a.log(), err)
		}
	})
}

var (
	errUnauthorized = errors.New("not logged in")
	errForbidden    = errors.New("forbidden")
	errCSRF         = errors.New("missing or wrong CSRF token")
	errBadRequest   = errors.New("bad request")
)

// Authenticate finds the caller of r: a bearer token, else a session cookie.
func (a *API) Authenticate(r *http.Request) (*Caller, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, secret, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			return nil, fmt.Errorf("%w: Authorization: want \"Bearer <token>\"", errUnauthorized)
		}
		t, u, err := a.Store.TokenByHash(r.Context(), auth.Hash(secret))
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: unknown, revoked or expired token", errUnauthorized)
		}
		if err != nil {
			return nil, err
		}
		role := t.Role
		if u.Role != store.RoleAdmin {
			role = u.Role // a token never has more than its owner
		}
		return &Caller{User: u, Role: role, Token: t}, nil
	}
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" {
		return nil, fmt.Errorf("%w: log in (POST %s/login) or send an API token", errUnauthorized, Prefix)
	}
	se, err := a.Store.Session(r.Context(), auth.Hash(ck.Value))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: the session ended; log in again", errUnauthorized)
	}
	if err != nil {
		return nil, err
	}
	return &Caller{User: se.User, Role: se.User.Role, Session: se}, nil
}

// CSRFField is the form field an HTML form carries the session's CSRF token in.
const CSRFField = "csrf_token"

// checkCSRF wants a cookie-authenticated unsafe request to carry the session's token. A
// multipart upload may carry it as its first field instead (the upload handler checks it).
func checkCSRF(r *http.Request, c *Caller) error {
	if c.Session == nil {
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if tok := r.Header.Get("X-CSRF-Token"); tok != "" {
		if tok == c.Session.CSRF {
			return nil
		}
		return errCSRF
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
		if r.PostFormValue(CSRFField) == c.Session.CSRF {
			return nil
		}
	case "multipart/form-data":
		return nil // the handler reads the field before the file
	}
	return errCSRF
}

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := http.StatusInternalServerError
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errUnauthorized):
		status = http.StatusUnauthorized
	case errors.Is(err, errForbidden), errors.Is(err, errCSRF):
		status = http.StatusForbidden
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotVerified):
		status = http.StatusConflict
	case errors.Is(err, errBadRequest), errors.Is(err, store.ErrInvalid), errors.Is(err, rollout.ErrPolicy),
		errors.Is(err, payloads.ErrNotPayload), errors.Is(err, auth.ErrWeakPassword):
		status = http.StatusBadRequest
	case errors.Is(err, payloads.ErrTooLarge), errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		log.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error: " + msg
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

// MaxBody bounds a JSON request body.
const MaxBody = 1 << 20

// DecodeJSON reads a request body into v: at most MaxBody bytes, one JSON value, no
// unknown fields; an error says what was wrong.
func DecodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(body, MaxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty body, want JSON", errBadRequest)
		}
		return fmt.Errorf("%w: JSON body: %v", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: JSON body: more than one value", errBadRequest)
	}
	if dec.InputOffset() > MaxBody {
		return fmt.Errorf("%w: JSON body longer than %d bytes", errBadRequest, MaxBody)
	}
	return nil
}

func decode(r *http.Request, v any) error { return DecodeJSON(r.Body, v) }

// decodeOptional is decode for a body that may be empty.
func decodeOptional(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %v", errBadRequest, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return DecodeJSON(bytes.NewReader(b), v)
}

// audit makes the next change of the store write an activity entry for the caller.
func audit(r *http.Request, c *Caller, a store.Activity) context.Context {
	a.Actor = c.Actor()
	return store.WithAudit(r.Context(), a)
}
