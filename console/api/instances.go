package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

// InstancePage answers GET /apps/{app}/instances.
type InstancePage struct {
	Total     int               `json:"total"`
	Page      int               `json:"page"`
	PerPage   int               `json:"per_page"`
	Instances []*store.Instance `json:"instances"`
}

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s=%q: want a whole number", errBadRequest, name, v)
	}
	return n, nil
}

func (a *API) listInstances(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.InstanceFilter{Status: rollout.Status(q.Get("status")), Version: q.Get("version"), Search: q.Get("q"), Sort: q.Get("sort"),
		Desc: q.Get("order") == "desc"}
	if o := q.Get("order"); o != "" && o != "asc" && o != "desc" {
		return fmt.Errorf("%w: order=%q: want asc or desc", errBadRequest, o)
	}
	if ref := q.Get("group"); ref != "" {
		g, err := a.Store.Group(r.Context(), app.ID, ref)
		if err != nil {
			return err
		}
		f.GroupID = g.ID
	}
	if f.Page, err = intParam(r, "page", 1); err != nil {
		return err
	}
	if f.PerPage, err = intParam(r, "per_page", 50); err != nil {
		return err
	}
	ins, total, err := a.Store.Instances(r.Context(), app.ID, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, InstancePage{Total: total, Page: max(f.Page, 1), PerPage: min(max(f.PerPage, 1), 1000), Instances: ins})
	return nil
}

// InstanceDetail answers GET /apps/{app}/instances/{instance}: the instance, its latest
// events and its status history, newest first.
type InstanceDetail struct {
	Instance *store.Instance       `json:"instance"`
	Events   []*store.Event        `json:"events"`
	History  []*store.HistoryEntry `json:"history"`
}

func (a *API) getInstance(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	in, err := a.Store.Instance(r.Context(), app.ID, r.PathValue("instance"))
	if err != nil {
		return err
	}
	evs, err := a.Store.Events(r.Context(), store.EventFilter{AppID: app.ID, InstanceID: in.ID, Limit: 100})
	if err != nil {
		return err
	}
	hist, err := a.Store.History(r.Context(), app.ID, in.ID, 100)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, InstanceDetail{Instance: in, Events: evs, History: hist})
	return nil
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.EventFilter{AppID: app.ID, InstanceID: q.Get("instance"), Oldest: q.Get("order") == "asc"}
	if ref := q.Get("group"); ref != "" {
		g, err := a.Store.Group(r.Context(), app.ID, ref)
		if err != nil {
			return err
		}
		f.GroupID = g.ID
	}
	after, err := intParam(r, "after", 0)
	if err != nil {
		return err
	}
	f.AfterID = int64(after)
	if f.Limit, err = intParam(r, "limit", 100); err != nil {
		return err
	}
	evs, err := a.Store.Events(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, evs)
	return nil
}

func (a *API) listActivity(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	q := r.URL.Query()
	f := store.ActivityFilter{InstanceID: q.Get("instance"), Kind: q.Get("kind"), Severity: q.Get("severity")}
	if ref := q.Get("app"); ref != "" {
		app, err := a.Store.App(r.Context(), ref)
		if err != nil {
			return err
		}
		f.AppID = app.ID
		if g := q.Get("group"); g != "" {
			grp, err := a.Store.Group(r.Context(), app.ID, g)
			if err != nil {
				return err
			}
			f.GroupID = grp.ID
		}
	} else if q.Get("group") != "" {
		return fmt.Errorf("%w: group= needs app=", errBadRequest)
	}
	before, err := intParam(r, "before", 0)
	if err != nil {
		return err
	}
	f.BeforeID = int64(before)
	if f.Limit, err = intParam(r, "limit", 100); err != nil {
		return err
	}
	log, err := a.Store.ActivityLog(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, log)
	return nil
}
