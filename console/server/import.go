package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/update-engine/payload"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// EnsureApp finds the application machines name id, or makes it: a UUID (Flatcar's kind of
// app id) becomes its id, anything else (Cairn's io.github.cairn-os.cairn) its product id.
func (s *Server) EnsureApp(ctx context.Context, id, name string) (*store.App, error) {
	a, err := s.Store.App(ctx, id)
	if !errors.Is(err, store.ErrNotFound) {
		return a, err
	}
	spec := store.App{Name: name}
	if norm := store.NormalizeAppID(id); uuidRE.MatchString(norm) {
		spec.ID = norm
	} else {
		spec.ProductID = norm
	}
	ctx = store.WithAudit(ctx, store.Activity{Kind: "app.created", Actor: store.ActorConsole, Message: fmt.Sprintf("created application %s (%s)", name, id)})
	defer s.Hub.Publish()
	return s.Store.CreateApp(ctx, spec)
}

// EnsureGroup finds the application's group of track, or makes it with a channel of the
// same name and the default policy (no limits: everything offered as asked for).
func (s *Server) EnsureGroup(ctx context.Context, appID, track string) (*store.Group, error) {
	g, err := s.Store.Group(ctx, appID, track)
	if !errors.Is(err, store.ErrNotFound) {
		return g, err
	}
	ch, err := s.Store.Channel(ctx, appID, track)
	if errors.Is(err, store.ErrNotFound) {
		ch, err = s.Store.CreateChannel(store.WithAudit(ctx, store.Activity{AppID: appID, Kind: "channel.created", Actor: store.ActorConsole,
			Message: "created channel " + track}), appID, track, "")
	}
	if err != nil {
		return nil, err
	}
	defer s.Hub.Publish()
	return s.Store.CreateGroup(store.WithAudit(ctx, store.Activity{AppID: appID, Kind: "group.created", Actor: store.ActorConsole,
		Message: fmt.Sprintf("created group %s (track %s, channel %s)", track, track, track)}), appID,
		store.GroupSpec{Name: track, Track: track, ChannelID: ch.ID, Policy: rollout.DefaultPolicy()})
}

// ImportFile stores the payload file at path as a package of the application, verified
// against the console's keys.
func (s *Server) ImportFile(ctx context.Context, appID, path, by string) (*store.Package, error) {
	st, err := s.Payloads.StoreFile(ctx, path)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("imported package %s from %s, signature %s", st.Version, path, st.Signature)
	if st.Signature != store.SignatureVerified {
		msg += ": " + st.SignatureError
	}
	defer s.Hub.Publish()
	return s.Store.CreatePackage(store.WithAudit(ctx, store.Activity{AppID: appID, Version: st.Version, Kind: "package.uploaded", Actor: by, Message: msg}),
		st.Package(appID, "", "", by))
}

// Publish points the application's channel at a package (it must be verified).
func (s *Server) Publish(ctx context.Context, appID, channel string, pkg *store.Package, by string) error {
	ch, err := s.Store.Channel(ctx, appID, channel)
	if err != nil {
		return err
	}
	defer s.Hub.Publish()
	return s.Store.SetChannelPackage(store.WithAudit(ctx, store.Activity{AppID: appID, Version: pkg.Version, Kind: "package.published", Actor: by,
		Message: fmt.Sprintf("published %s on channel %s (was %s)", pkg.Version, channel, orNone(ch.Version))}), appID, ch.ID, pkg.ID)
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// ImportDir is the development server's way to publish: every dir/<track>/*.cairn becomes
// a package of the application appID (made if missing, named name), each track a group
// with a channel of its name, and the newest verified payload of a track is published on
// its channel unless the channel already has a newer one. A payload that does not verify
// is imported as unverified and not published (the log says why). Running it again
// changes nothing.
func (s *Server) ImportDir(ctx context.Context, dir, appID, name string) error {
	app, err := s.EnsureApp(ctx, appID, name)
	if err != nil {
		return err
	}
	tracks, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("import directory %s: %w", dir, err)
	}
	for _, t := range tracks {
		if !t.IsDir() {
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, t.Name(), "*.cairn"))
		if err != nil {
			return err
		}
		if len(files) == 0 {
			continue
		}
		sort.Strings(files)
		g, err := s.EnsureGroup(ctx, app.ID, t.Name())
		if err != nil {
			return fmt.Errorf("import %s: %w", t.Name(), err)
		}
		var newest *store.Package
		for _, f := range files {
			p, err := s.ImportFile(ctx, app.ID, f, store.ActorConsole)
			if err != nil {
				s.Log.Warn("import: skipping a file", "path", f, "err", err)
				continue
			}
			if !p.Verified() {
				s.Log.Warn("import: not publishing an unverified payload", "path", f, "version", p.Version, "reason", p.SignatureError)
				continue
			}
			if newest == nil || payload.CompareVersions(p.Version, newest.Version) > 0 {
				newest = p
			}
		}
		if newest == nil || (g.Version != "" && payload.CompareVersions(g.Version, newest.Version) >= 0) {
			continue
		}
		if err := s.Publish(ctx, app.ID, g.Channel, newest, store.ActorConsole); err != nil {
			return fmt.Errorf("import %s: %w", t.Name(), err)
		}
		s.Log.Info("import: published", "track", t.Name(), "version", newest.Version)
	}
	return nil
}
