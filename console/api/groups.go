package api

import (
	"fmt"
	"net/http"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

// GroupBody is the body of POST and PUT /apps/{app}/groups. A PUT changes the fields it
// has and keeps the others (within policy too); a POST starts from rollout.DefaultPolicy.
type GroupBody struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Track       string         `json:"track"`
	Channel     string         `json:"channel"` // a channel's name or id; "" for none
	Policy      rollout.Policy `json:"policy"`
}

func (a *API) spec(r *http.Request, appID string, b GroupBody) (store.GroupSpec, error) {
	sp := store.GroupSpec{Name: b.Name, Description: b.Description, Track: b.Track, Policy: b.Policy}
	if b.Channel != "" {
		ch, err := a.Store.Channel(r.Context(), appID, b.Channel)
		if err != nil {
			return sp, err
		}
		sp.ChannelID = ch.ID
	}
	return sp, nil
}

func (a *API) group(r *http.Request) (*store.App, *store.Group, error) {
	app, err := a.app(r)
	if err != nil {
		return nil, nil, err
	}
	g, err := a.Store.Group(r.Context(), app.ID, r.PathValue("group"))
	return app, g, err
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	gs, err := a.Store.Groups(r.Context(), app.ID)
	if err != nil {
		return err
	}
	if gs == nil {
		gs = []*store.Group{}
	}
	writeJSON(w, http.StatusOK, gs)
	return nil
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	b := GroupBody{Policy: rollout.DefaultPolicy()}
	if err := decode(r, &b); err != nil {
		return err
	}
	sp, err := a.spec(r, app.ID, b)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Kind: "group.created",
		Message: fmt.Sprintf("created group %s (track %s, channel %s)", b.Name, firstOf(b.Track, b.Name), firstOf(b.Channel, "none"))})
	g, err := a.Store.CreateGroup(ctx, app.ID, sp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	_, g, err := a.group(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (a *API) updateGroup(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, g, err := a.group(r)
	if err != nil {
		return err
	}
	b := GroupBody{Name: g.Name, Description: g.Description, Track: g.Track, Channel: g.ChannelID, Policy: g.Policy}
	if err := decode(r, &b); err != nil {
		return err
	}
	sp, err := a.spec(r, app.ID, b)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, GroupID: g.ID, Kind: "group.updated",
		Message: fmt.Sprintf("changed group %s: %s", g.Name, describeChange(g, sp))})
	up, err := a.Store.UpdateGroup(ctx, app.ID, g.ID, sp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, up)
	return nil
}

// describeChange says what a group update changes, for the audit log.
func describeChange(g *store.Group, sp store.GroupSpec) string {
	var s []string
	add := func(what string, from, to any) {
		if fmt.Sprint(from) != fmt.Sprint(to) {
			s = append(s, fmt.Sprintf("%s %v → %v", what, from, to))
		}
	}
	add("name", g.Name, sp.Name)
	add("track", g.Track, sp.Track)
	add("channel", g.ChannelID, sp.ChannelID)
	add("description", g.Description, sp.Description)
	add("policy", fmt.Sprintf("%+v", g.Policy), fmt.Sprintf("%+v", sp.Policy))
	if len(s) == 0 {
		return "nothing"
	}
	return fmt.Sprint(s)
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, g, err := a.group(r)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, GroupID: g.ID, Severity: store.SeverityWarning, Kind: "group.deleted",
		Message: fmt.Sprintf("deleted group %s", g.Name)})
	if err := a.Store.DeleteGroup(ctx, app.ID, g.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PauseBody is the optional body of POST .../pause.
type PauseBody struct {
	Reason string `json:"reason"`
}

func (a *API) pauseGroup(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, g, err := a.group(r)
	if err != nil {
		return err
	}
	var b PauseBody
	if err := decodeOptional(r, &b); err != nil {
		return err
	}
	reason := firstOf(b.Reason, "paused by "+c.User.Username)
	ctx := audit(r, c, store.Activity{AppID: app.ID, GroupID: g.ID, Version: g.Version, Severity: store.SeverityWarning, Kind: "group.paused",
		Message: fmt.Sprintf("paused group %s: %s", g.Name, reason)})
	if err := a.Store.Pause(ctx, app.ID, g.ID, reason, c.User.Username); err != nil {
		return err
	}
	return a.getGroup(w, r, c)
}

func (a *API) resumeGroup(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, g, err := a.group(r)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("resumed group %s", g.Name)
	if g.Paused {
		msg += fmt.Sprintf(" (paused by %s: %s); failures before now no longer count towards a halt", g.PausedBy, g.PausedReason)
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, GroupID: g.ID, Version: g.Version, Kind: "group.resumed", Message: msg})
	if err := a.Store.Resume(ctx, app.ID, g.ID); err != nil {
		return err
	}
	return a.getGroup(w, r, c)
}

// ApproveBody is the body of POST .../approve: the version to roll out (the channel's when
// empty).
type ApproveBody struct {
	Version string `json:"version"`
}

func (a *API) approveGroup(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, g, err := a.group(r)
	if err != nil {
		return err
	}
	var b ApproveBody
	if err := decodeOptional(r, &b); err != nil {
		return err
	}
	v := firstOf(b.Version, g.Version)
	if v == "" {
		return fmt.Errorf("%w: group %s has no package to approve; name a version", errBadRequest, g.Name)
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, GroupID: g.ID, Version: v, Kind: "group.approved",
		Message: fmt.Sprintf("approved the rollout of %s in group %s", v, g.Name)})
	if err := a.Store.Approve(ctx, app.ID, g.ID, v); err != nil {
		return err
	}
	return a.getGroup(w, r, c)
}
