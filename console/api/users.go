package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

// UserBody is the body of POST and PUT /users (PUT: an empty field keeps what there is).
type UserBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	us, err := a.Store.Users(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, us)
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, c *Caller) error {
	var b UserBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Role == "" {
		b.Role = store.RoleViewer
	}
	hash, err := auth.HashPassword(b.Password)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{Kind: "user.created", Message: fmt.Sprintf("created user %s (%s)", b.Username, b.Role)})
	u, err := a.Store.CreateUser(ctx, b.Username, hash, b.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// lastAdmin reports whether u is the only admin, whom no one may remove or demote: the
// console would have no one left to change anything.
func (a *API) lastAdmin(r *http.Request, u *store.User) (bool, error) {
	if u.Role != store.RoleAdmin {
		return false, nil
	}
	us, err := a.Store.Users(r.Context())
	if err != nil {
		return false, err
	}
	n := 0
	for _, x := range us {
		if x.Role == store.RoleAdmin {
			n++
		}
	}
	return n == 1, nil
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request, c *Caller) error {
	u, err := a.Store.User(r.Context(), r.PathValue("user"))
	if err != nil {
		return err
	}
	var b UserBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Username != "" && b.Username != u.Username {
		return fmt.Errorf("%w: a user's name does not change", errBadRequest)
	}
	if b.Role != "" && b.Role != u.Role {
		if last, err := a.lastAdmin(r, u); err != nil || last {
			return errors.Join(err, fmt.Errorf("%w: %s is the last admin", store.ErrConflict, u.Username))
		}
	}
	hash := ""
	if b.Password != "" {
		if hash, err = auth.HashPassword(b.Password); err != nil {
			return err
		}
	}
	what := "role " + firstOf(b.Role, u.Role)
	if hash != "" {
		what = "password and " + what
	}
	ctx := audit(r, c, store.Activity{Kind: "user.updated", Message: fmt.Sprintf("changed user %s: %s", u.Username, what)})
	if err := a.Store.UpdateUser(ctx, u.ID, hash, b.Role); err != nil {
		return err
	}
	u, err = a.Store.User(r.Context(), u.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, c *Caller) error {
	u, err := a.Store.User(r.Context(), r.PathValue("user"))
	if err != nil {
		return err
	}
	if last, err := a.lastAdmin(r, u); err != nil || last {
		return errors.Join(err, fmt.Errorf("%w: %s is the last admin", store.ErrConflict, u.Username))
	}
	ctx := audit(r, c, store.Activity{Severity: store.SeverityWarning, Kind: "user.deleted", Message: fmt.Sprintf("deleted user %s", u.Username)})
	if err := a.Store.DeleteUser(ctx, u.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// TokenBody is the body of POST /tokens.
type TokenBody struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// User owns the token (the caller when empty).
	User string `json:"user"`
	// ExpiresIn is how long it lasts ("720h"); empty: until revoked.
	ExpiresIn rollout.Duration `json:"expires_in"`
}

// NewTokenResult answers POST /tokens: the secret is shown this once.
type NewTokenResult struct {
	Token  *store.Token `json:"token"`
	Secret string       `json:"secret"`
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	ts, err := a.Store.Tokens(r.Context(), "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ts)
	return nil
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, c *Caller) error {
	var b TokenBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if b.Name == "" {
		return fmt.Errorf("%w: a token needs a name (what uses it)", errBadRequest)
	}
	owner := c.User
	if b.User != "" {
		var err error
		if owner, err = a.Store.User(r.Context(), b.User); err != nil {
			return err
		}
	}
	if b.Role == "" {
		b.Role = owner.Role
	}
	if owner.Role != store.RoleAdmin && b.Role == store.RoleAdmin {
		return fmt.Errorf("%w: %s is a viewer: its tokens cannot be admin tokens", errBadRequest, owner.Username)
	}
	if b.ExpiresIn < 0 {
		return fmt.Errorf("%w: expires_in %s: want a duration longer than 0, or none", errBadRequest, b.ExpiresIn)
	}
	var expires time.Time
	if b.ExpiresIn > 0 {
		expires = time.Now().Add(time.Duration(b.ExpiresIn))
	}
	secret := auth.NewToken()
	ctx := audit(r, c, store.Activity{Kind: "token.created", Message: fmt.Sprintf("created API token %s (%s) for %s", b.Name, b.Role, owner.Username)})
	t, err := a.Store.CreateToken(ctx, owner.ID, b.Name, b.Role, auth.Hash(secret), expires)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, NewTokenResult{Token: t, Secret: secret})
	return nil
}

func (a *API) deleteToken(w http.ResponseWriter, r *http.Request, c *Caller) error {
	id := r.PathValue("token")
	ctx := audit(r, c, store.Activity{Kind: "token.revoked", Message: fmt.Sprintf("revoked API token %s", id)})
	if err := a.Store.DeleteToken(ctx, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
