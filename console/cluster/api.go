package cluster

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/cairn-os/cairn/console/api"
	"github.com/cairn-os/cairn/console/store"
)

// API serves the watcher's snapshot and the reboot lock's release under the JSON API.
type API struct {
	Watcher *Watcher
	Store   *store.Store
}

// Register adds GET /cluster (viewer) and POST /cluster/reboot-lock/unlock (admin) to the API.
func (c *API) Register(a *api.API, mux *http.ServeMux) {
	a.Handle(mux, "GET /cluster", store.RoleViewer, c.get)
	a.Handle(mux, "POST /cluster/reboot-lock/unlock", store.RoleAdmin, c.unlock)
}

func (c *API) get(w http.ResponseWriter, _ *http.Request, _ *api.Caller) error {
	api.WriteJSON(w, http.StatusOK, c.Watcher.Snapshot())
	return nil
}

// UnlockBody is the body of POST /cluster/reboot-lock/unlock: the machine whose hold to
// release, and the semaphore's key (locksmith's default one when empty).
type UnlockBody struct {
	Key    string `json:"key"`
	Holder string `json:"holder"`
}

func (c *API) unlock(w http.ResponseWriter, r *http.Request, caller *api.Caller) error {
	var b UnlockBody
	if err := api.DecodeJSON(r.Body, &b); err != nil {
		return err
	}
	if b.Holder == "" {
		return fmt.Errorf("%w: name the holder to release (its machine id)", store.ErrInvalid)
	}
	err := c.Watcher.Unlock(r.Context(), b.Key, b.Holder)
	switch {
	case errors.Is(err, ErrNotConfigured):
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	case errors.Is(err, ErrNotHolder):
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case err != nil:
		return err
	}
	key := b.Key
	if key == "" {
		key = "the reboot lock"
	}
	if err := c.Store.AddActivity(r.Context(), &store.Activity{InstanceID: b.Holder, Severity: store.SeverityWarning, Kind: "rebootlock.unlocked",
		Actor: caller.Actor(), Message: fmt.Sprintf("released %s's hold on %s", b.Holder, key)}); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, c.Watcher.Snapshot())
	return nil
}
