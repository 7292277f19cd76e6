package api

import (
	"fmt"
	"net/http"

	"github.com/cairn-os/cairn/console/store"
)

// channel is the channel the request's path names, and its application.
func (a *API) channel(r *http.Request) (*store.App, *store.Channel, error) {
	app, err := a.app(r)
	if err != nil {
		return nil, nil, err
	}
	ch, err := a.Store.Channel(r.Context(), app.ID, r.PathValue("channel"))
	return app, ch, err
}

func (a *API) app(r *http.Request) (*store.App, error) {
	return a.Store.App(r.Context(), r.PathValue("app"))
}

func (a *API) listApps(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	apps, err := a.Store.Apps(r.Context())
	if err != nil {
		return err
	}
	if apps == nil {
		apps = []*store.App{}
	}
	writeJSON(w, http.StatusOK, apps)
	return nil
}

// AppSpec is the body of POST and PUT /apps.
type AppSpec struct {
	ID          string `json:"id"`
	ProductID   string `json:"product_id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

func (a *API) createApp(w http.ResponseWriter, r *http.Request, c *Caller) error {
	var sp AppSpec
	if err := decode(r, &sp); err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: store.NormalizeAppID(sp.ID), Kind: "app.created",
		Message: fmt.Sprintf("created application %s (%s)", sp.Name, firstOf(sp.ProductID, sp.ID, "a new id"))})
	app, err := a.Store.CreateApp(ctx, store.App{ID: sp.ID, ProductID: sp.ProductID, Name: sp.Name, Description: sp.Description})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, app)
	return nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (a *API) getApp(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, app)
	return nil
}

func (a *API) updateApp(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	var sp AppSpec
	if err := decode(r, &sp); err != nil {
		return err
	}
	if (sp.ID != "" && store.NormalizeAppID(sp.ID) != app.ID) || (sp.ProductID != "" && store.NormalizeAppID(sp.ProductID) != app.ProductID) {
		return fmt.Errorf("%w: an application's id and product id do not change (its machines send them)", errBadRequest)
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Kind: "app.updated", Message: fmt.Sprintf("changed application %s", sp.Name)})
	up, err := a.Store.UpdateApp(ctx, app.ID, sp.Name, sp.Description)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, up)
	return nil
}

func (a *API) deleteApp(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	pkgs, err := a.Store.Packages(r.Context(), app.ID)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Severity: store.SeverityWarning, Kind: "app.deleted",
		Message: fmt.Sprintf("deleted application %s with its packages, channels, groups and instances", app.Name)})
	if err := a.Store.DeleteApp(ctx, app.ID); err != nil {
		return err
	}
	for _, p := range pkgs {
		a.removeFile(r, p)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) summary(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	sum, err := a.Store.Summary(r.Context(), app.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sum)
	return nil
}

// ChannelSpec is the body of POST and PUT /apps/{app}/channels: a name and the package
// (id or version) it points at, "" for none.
type ChannelSpec struct {
	Name    string `json:"name"`
	Package string `json:"package"`
}

func (a *API) packageID(r *http.Request, appID, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	p, err := a.Store.Package(r.Context(), appID, ref)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}

func (a *API) listChannels(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	chs, err := a.Store.Channels(r.Context(), app.ID)
	if err != nil {
		return err
	}
	if chs == nil {
		chs = []*store.Channel{}
	}
	writeJSON(w, http.StatusOK, chs)
	return nil
}

func (a *API) createChannel(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	var sp ChannelSpec
	if err := decode(r, &sp); err != nil {
		return err
	}
	pkg, err := a.packageID(r, app.ID, sp.Package)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Version: sp.Package, Kind: "channel.created",
		Message: fmt.Sprintf("created channel %s%s", sp.Name, onPackage(sp.Package))})
	ch, err := a.Store.CreateChannel(ctx, app.ID, sp.Name, pkg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ch)
	return nil
}

func onPackage(p string) string {
	if p == "" {
		return " with no package"
	}
	return " on package " + p
}

func (a *API) getChannel(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	_, ch, err := a.channel(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ch)
	return nil
}

func (a *API) updateChannel(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, ch, err := a.channel(r)
	if err != nil {
		return err
	}
	var sp ChannelSpec
	if err := decode(r, &sp); err != nil {
		return err
	}
	pkg, err := a.packageID(r, app.ID, sp.Package)
	if err != nil {
		return err
	}
	if sp.Name != "" && sp.Name != ch.Name {
		ctx := audit(r, c, store.Activity{AppID: app.ID, Kind: "channel.renamed", Message: fmt.Sprintf("renamed channel %s to %s", ch.Name, sp.Name)})
		if err := a.Store.RenameChannel(ctx, app.ID, ch.ID, sp.Name); err != nil {
			return err
		}
		ch.Name = sp.Name
	}
	if pkg != ch.PackageID {
		ctx := audit(r, c, store.Activity{AppID: app.ID, Version: sp.Package, Kind: "channel.published",
			Message: fmt.Sprintf("pointed channel %s%s (was %s)", ch.Name, onPackage(sp.Package), firstOf(ch.Version, "none"))})
		if err := a.Store.SetChannelPackage(ctx, app.ID, ch.ID, pkg); err != nil {
			return err
		}
	}
	ch, err = a.Store.Channel(r.Context(), app.ID, ch.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ch)
	return nil
}

func (a *API) deleteChannel(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, ch, err := a.channel(r)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Kind: "channel.deleted", Message: fmt.Sprintf("deleted channel %s", ch.Name)})
	if err := a.Store.DeleteChannel(ctx, app.ID, ch.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
