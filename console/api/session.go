package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/store"
)

// Login is the body of POST /login (JSON, or a form with the same field names).
type Login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// SessionInfo answers a login and GET /session.
type SessionInfo struct {
	User *store.User `json:"user"`
	Role string      `json:"role"`
	// CSRFToken goes in X-CSRF-Token (or the csrf_token form field) of the session's
	// unsafe requests.
	CSRFToken string    `json:"csrf_token,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	var l Login
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		l.Username, l.Password = r.PostFormValue("username"), r.PostFormValue("password")
	} else if err := decode(r, &l); err != nil {
		return err
	}
	u, err := a.Store.User(r.Context(), l.Username)
	hash := ""
	if err == nil {
		hash = u.PasswordHash
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if l.Username == "" || !auth.CheckPassword(hash, l.Password) {
		a.log().Info("login refused", "user", l.Username, "client", r.RemoteAddr)
		return fmt.Errorf("%w: wrong user name or password", errUnauthorized)
	}
	ttl := a.SessionTTL
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	secret, csrf := auth.NewSecret(""), auth.NewSecret("")
	expires := time.Now().Add(ttl)
	if err := a.Store.CreateSession(r.Context(), auth.Hash(secret), u.ID, csrf, expires); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", Expires: expires, HttpOnly: true,
		Secure: a.SecureCookies, SameSite: http.SameSiteLaxMode})
	a.log().Info("login", "user", u.Username, "client", r.RemoteAddr)
	writeJSON(w, http.StatusOK, SessionInfo{User: u, Role: u.Role, CSRFToken: csrf, ExpiresAt: expires})
	return nil
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, c *Caller) error {
	if c.Session != nil {
		if err := a.Store.DeleteSession(r.Context(), c.Session.ID); err != nil {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: a.SecureCookies,
		SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) session(w http.ResponseWriter, _ *http.Request, c *Caller) error {
	info := SessionInfo{User: c.User, Role: c.Role}
	if c.Session != nil {
		info.CSRFToken, info.ExpiresAt = c.Session.CSRF, c.Session.ExpiresAt
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}
