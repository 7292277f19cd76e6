package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/cairn-os/cairn/console/store"
)

// MaxReleaseNotes bounds a package's release notes.
const MaxReleaseNotes = 64 << 10

// pkg is the package the request's path names, and its application.
func (a *API) pkg(r *http.Request) (*store.App, *store.Package, error) {
	app, err := a.app(r)
	if err != nil {
		return nil, nil, err
	}
	p, err := a.Store.Package(r.Context(), app.ID, r.PathValue("package"))
	return app, p, err
}

func (a *API) listPackages(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	ps, err := a.Store.Packages(r.Context(), app.ID)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []*store.Package{}
	}
	writeJSON(w, http.StatusOK, ps)
	return nil
}

func (a *API) getPackage(w http.ResponseWriter, r *http.Request, _ *Caller) error {
	_, p, err := a.pkg(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// Upload is what an upload says besides the payload: multipart fields of these names, or
// query parameters of a raw body (Content-Type application/octet-stream).
type Upload struct {
	// Filename names the file machines download (cairn-<version>.cairn by default).
	Filename     string
	ReleaseNotes string
	// Publish names a channel to point at the package once it is stored and verified.
	Publish string
}

// UploadResult answers an upload.
type UploadResult struct {
	Package *store.Package `json:"package"`
	// Publishable: the signature verified; PublishedTo is the channel it was published to.
	Publishable bool   `json:"publishable"`
	PublishedTo string `json:"published_to,omitempty"`
}

func (u *Upload) check() error {
	if u.Filename != "" && (path.Base(u.Filename) != u.Filename || strings.ContainsAny(u.Filename, "/\\\x00") || u.Filename == "." || u.Filename == ".." ||
		len(u.Filename) > 255 || !utf8.ValidString(u.Filename)) {
		return fmt.Errorf("%w: filename %q: want a plain file name", errBadRequest, u.Filename)
	}
	if len(u.ReleaseNotes) > MaxReleaseNotes || !utf8.ValidString(u.ReleaseNotes) {
		return fmt.Errorf("%w: release notes: want UTF-8 text of at most %d bytes", errBadRequest, MaxReleaseNotes)
	}
	return nil
}

// ReadUpload finds the payload and the upload's fields in a request: a multipart form
// (fields csrf_token, filename, release_notes, publish, then the payload as the part named
// "file", which ends the form) or a raw body with the fields as query parameters. csrf, when
// not empty, is the session's token that a multipart form without an X-CSRF-Token header
// must carry before its file.
func ReadUpload(r *http.Request, csrf string) (Upload, io.Reader, error) {
	var u Upload
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		q := r.URL.Query()
		u = Upload{Filename: q.Get("filename"), ReleaseNotes: q.Get("release_notes"), Publish: q.Get("publish")}
		return u, r.Body, u.check()
	}
	if params["boundary"] == "" {
		return u, nil, fmt.Errorf("%w: multipart form without a boundary", errBadRequest)
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	sawCSRF := csrf == "" || r.Header.Get("X-CSRF-Token") != ""
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return u, nil, fmt.Errorf("%w: multipart form without a part named \"file\"", errBadRequest)
		}
		if err != nil {
			return u, nil, fmt.Errorf("%w: multipart form: %v", errBadRequest, err)
		}
		name := p.FormName()
		if name == "file" {
			if !sawCSRF {
				return u, nil, fmt.Errorf("%w: the form's csrf_token field must come before its file", errCSRF)
			}
			if u.Filename == "" && p.FileName() != "" {
				u.Filename = path.Base(strings.ReplaceAll(p.FileName(), "\\", "/"))
			}
			return u, p, u.check()
		}
		b, err := io.ReadAll(io.LimitReader(p, MaxReleaseNotes+1))
		if err != nil {
			return u, nil, fmt.Errorf("%w: multipart field %q: %v", errBadRequest, name, err)
		}
		v := string(b)
		switch name {
		case CSRFField:
			if v != csrf {
				return u, nil, errCSRF
			}
			sawCSRF = true
		case "filename":
			u.Filename = v
		case "release_notes":
			if len(b) > MaxReleaseNotes {
				return u, nil, fmt.Errorf("%w: release notes longer than %d bytes", errBadRequest, MaxReleaseNotes)
			}
			u.ReleaseNotes = v
		case "publish":
			u.Publish = v
		default:
			return u, nil, fmt.Errorf("%w: multipart field %q: want csrf_token, filename, release_notes, publish or file", errBadRequest, name)
		}
	}
}

func (a *API) uploadPackage(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, err := a.app(r)
	if err != nil {
		return err
	}
	csrf := ""
	if c.Session != nil {
		csrf = c.Session.CSRF
	}
	u, body, err := ReadUpload(r, csrf)
	if err != nil {
		return err
	}
	st, err := a.Payloads.Store(r.Context(), body)
	if err != nil {
		return err
	}
	pkg := st.Package(app.ID, u.Filename, u.ReleaseNotes, c.User.Username)
	msg := fmt.Sprintf("uploaded package %s (%d bytes, sha256 %s), signature %s", st.Version, st.Size, st.SHA256, st.Signature)
	sev := store.SeverityInfo
	if st.Signature != store.SignatureVerified {
		msg += ": " + st.SignatureError
		sev = store.SeverityWarning
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Version: st.Version, Severity: sev, Kind: "package.uploaded", Message: msg})
	p, err := a.Store.CreatePackage(ctx, pkg)
	if err != nil {
		if used, uerr := a.Store.FileInUse(r.Context(), st.File); uerr == nil && !used {
			a.Payloads.Remove(st.File) //nolint:errcheck // best effort: an orphan file wastes space, nothing more
		}
		return err
	}
	res := UploadResult{Package: p, Publishable: p.Verified()}
	if u.Publish != "" {
		if err := a.publish(r, c, app, p, u.Publish); err != nil {
			return fmt.Errorf("package %s stored (id %s) but not published: %w", p.Version, p.ID, err)
		}
		res.PublishedTo = u.Publish
		if p, err = a.Store.Package(r.Context(), app.ID, p.ID); err == nil {
			res.Package = p
		}
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// PackageBody is the body of PUT /apps/{app}/packages/{package}.
type PackageBody struct {
	ReleaseNotes string `json:"release_notes"`
}

func (a *API) updatePackage(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, p, err := a.pkg(r)
	if err != nil {
		return err
	}
	b := PackageBody{ReleaseNotes: p.ReleaseNotes}
	if err := decode(r, &b); err != nil {
		return err
	}
	if err := (&Upload{ReleaseNotes: b.ReleaseNotes}).check(); err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Version: p.Version, Kind: "package.updated", Message: fmt.Sprintf("changed the release notes of %s", p.Version)})
	if err := a.Store.SetReleaseNotes(ctx, app.ID, p.ID, b.ReleaseNotes); err != nil {
		return err
	}
	return a.getPackage(w, r, c)
}

func (a *API) deletePackage(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, p, err := a.pkg(r)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Version: p.Version, Severity: store.SeverityWarning, Kind: "package.deleted",
		Message: fmt.Sprintf("deleted package %s", p.Version)})
	if _, err := a.Store.DeletePackage(ctx, app.ID, p.ID); err != nil {
		return err
	}
	a.removeFile(r, p)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeFile deletes a deleted package's file unless another package has the same one.
func (a *API) removeFile(r *http.Request, p *store.Package) {
	if used, err := a.Store.FileInUse(r.Context(), p.File); err != nil || used {
		return
	}
	if err := a.Payloads.Remove(p.File); err != nil {
		a.log().Warn("removing a deleted package's file", "file", p.File, "err", err)
	}
}

// PublishBody is the body of POST .../packages/{package}/publish.
type PublishBody struct {
	Channel string `json:"channel"`
}

func (a *API) publishPackage(w http.ResponseWriter, r *http.Request, c *Caller) error {
	app, p, err := a.pkg(r)
	if err != nil {
		return err
	}
	var b PublishBody
	if err := decode(r, &b); err != nil {
		return err
	}
	if err := a.publish(r, c, app, p, b.Channel); err != nil {
		return err
	}
	ch, err := a.Store.Channel(r.Context(), app.ID, b.Channel)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ch)
	return nil
}

func (a *API) publish(r *http.Request, c *Caller, app *store.App, p *store.Package, channel string) error {
	if channel == "" {
		return fmt.Errorf("%w: name the channel to publish to", errBadRequest)
	}
	ch, err := a.Store.Channel(r.Context(), app.ID, channel)
	if err != nil {
		return err
	}
	ctx := audit(r, c, store.Activity{AppID: app.ID, Version: p.Version, Kind: "package.published",
		Message: fmt.Sprintf("published %s on channel %s (was %s)", p.Version, ch.Name, firstOf(ch.Version, "none"))})
	return a.Store.SetChannelPackage(ctx, app.ID, ch.ID, p.ID)
}
