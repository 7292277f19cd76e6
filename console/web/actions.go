package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/console/api"
	"github.com/cairn-os/cairn/console/store"
)

// registerActions adds the forms' POST routes. Each turns its form into the JSON API's
// request and dispatches it to the API's own handler in-process, with the browser's
// cookie, CSRF token and origin headers: the API authenticates, checks the role and the
// token, writes the change and its audit entry, exactly as for a script. The answer
// becomes a message on the page the form came from.
func (u *UI) registerActions(mux *http.ServeMux) {
	act := func(pattern string, h func(w http.ResponseWriter, r *http.Request) (next string, f *Flash)) {
		mux.HandleFunc("POST "+pattern, func(w http.ResponseWriter, r *http.Request) {
			next, f := h(w, r)
			if next == "" {
				return // answered already
			}
			if f != nil {
				setFlash(w, f.Kind, f.Message)
			}
			http.Redirect(w, r, next, http.StatusSeeOther)
		})
	}
	act("/apps", u.createApp)
	act("/apps/{app}/groups", u.createGroup)
	act("/apps/{app}/groups/{group}", u.updateGroup)
	act("/apps/{app}/groups/{group}/pause", u.groupAction("pause"))
	act("/apps/{app}/groups/{group}/resume", u.groupAction("resume"))
	act("/apps/{app}/groups/{group}/approve", u.groupAction("approve"))
	act("/apps/{app}/groups/{group}/delete", u.deleteGroup)
	act("/apps/{app}/packages", u.upload)
	act("/apps/{app}/packages/{package}/publish", u.publish)
	act("/apps/{app}/packages/{package}/delete", u.deletePackage)
	act("/apps/{app}/channels", u.createChannel)
	act("/apps/{app}/channels/{channel}", u.updateChannel)
	act("/apps/{app}/channels/{channel}/delete", u.deleteChannel)
	act("/admin/users", u.createUser)
	act("/admin/users/{user}", u.updateUser)
	act("/admin/users/{user}/delete", u.deleteUser)
	mux.HandleFunc("POST /admin/tokens", u.createToken)
	act("/admin/tokens/{token}/delete", u.deleteToken)
	act("/cluster/reboot-lock/unlock", u.unlock)
}

// apiAnswer is what the API answered a dispatched request.
type apiAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

// err is the API's error message, "" for a success.
func (a apiAnswer) err() string {
	if a.Status < 300 {
		return ""
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(a.Body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(http.StatusText(a.Status) + " " + string(a.Body))
}

// recorder keeps a dispatched request's answer.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

// forwarded are the browser's headers a dispatched request keeps: who it is (the session
// cookie, or a token) and where it comes from (for the API's cross-origin check).
var forwarded = []string{"Cookie", "Authorization", "Origin", "Referer", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "User-Agent"}

// dispatch sends method path (under /api/v1) with body to the API in-process, as the
// browser's request r, with the CSRF token of its form.
func (u *UI) dispatch(r *http.Request, method, path, contentType string, body io.Reader, csrf string) apiAnswer {
	req, err := http.NewRequestWithContext(r.Context(), method, api.Prefix+path, body)
	if err != nil {
		return apiAnswer{Status: http.StatusBadRequest, Body: []byte(err.Error())}
	}
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	for _, h := range forwarded {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	if r.ContentLength > 0 && body == r.Body {
		req.ContentLength = r.ContentLength
	}
	rec := &recorder{h: http.Header{}}
	u.Backend.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return apiAnswer{Status: rec.status, Header: rec.h, Body: rec.body.Bytes()}
}

// call dispatches a form's change as JSON (v nil: no body) and says how it went.
func (u *UI) call(r *http.Request, method, path string, v any) apiAnswer {
	var body io.Reader
	ct := ""
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return apiAnswer{Status: http.StatusBadRequest, Body: []byte(err.Error())}
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	return u.dispatch(r, method, path, ct, body, r.PostFormValue(api.CSRFField))
}

// outcome turns an answer into where to go and what to say.
func outcome(a apiAnswer, next, ok string) (string, *Flash) {
	if a.Status == http.StatusUnauthorized {
		return "/login?next=" + url.QueryEscape(next), &Flash{"error", a.err()}
	}
	if msg := a.err(); msg != "" {
		return next, &Flash{"error", msg}
	}
	return next, &Flash{"ok", ok}
}

// form reads a urlencoded form of at most 1 MiB.
func form(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	return r.ParseForm()
}

func (u *UI) appPath(r *http.Request) string { return "/apps/" + url.PathEscape(r.PathValue("app")) }

func (u *UI) createApp(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	if err := form(w, r); err != nil {
		return "/apps", &Flash{"error", err.Error()}
	}
	body := map[string]string{"name": r.PostFormValue("name"), "description": r.PostFormValue("description")}
	id := strings.TrimSpace(r.PostFormValue("app_id"))
	if uuidLike(id) {
		body["id"] = id
	} else {
		body["product_id"] = id
	}
	a := u.call(r, http.MethodPost, "/apps", body)
	next := "/apps"
	if a.err() == "" {
		var app store.App
		if json.Unmarshal(a.Body, &app) == nil {
			next = appURL(&app)
		}
	}
	return outcome(a, next, "Created application "+r.PostFormValue("name"))
}

func uuidLike(s string) bool {
	s = strings.Trim(s, "{}")
	return len(s) == 36 && strings.Count(s, "-") == 4
}

// groupBody is a group form as the API's group body: name, description, track, channel and
// the policy's fields that the form filled in.
func groupBody(f url.Values) (map[string]any, error) {
	b := map[string]any{}
	for _, k := range []string{"name", "description", "track", "channel"} {
		if _, ok := f[k]; ok {
			b[k] = strings.TrimSpace(f.Get(k))
		}
	}
	pol, err := PolicyForm(f)
	if err != nil {
		return nil, err
	}
	if len(pol) > 0 {
		b["policy"] = pol
	}
	return b, nil
}

// policyFields are the rollout policy's form fields and their kinds.
var policyFields = []struct{ name, label, kind string }{
	{"approval", "approval", "text"},
	{"max_updates_per_period", "max updates per period", "int"},
	{"period", "period", "duration"},
	{"max_in_flight", "max in flight", "int"},
	{"update_timeout", "update timeout", "duration"},
	{"window_start", "window start", "text"},
	{"window_length", "window length", "text"},
	{"timezone", "time zone", "text"},
	{"canaries", "canaries", "int"},
	{"halt_errors", "halt after failures", "int"},
	{"halt_percent", "halt at a share of failures", "float"},
	{"halt_min_sample", "minimum attempts", "int"},
}

// PolicyForm reads the rollout policy's fields of a form into the API's policy JSON: a
// number field left empty is 0 (no limit), a duration left empty keeps what the group had;
// a field the form does not have is left out. A number that is not one is refused with
// the field's name.
func PolicyForm(f url.Values) (map[string]any, error) {
	pol := map[string]any{}
	for _, fl := range policyFields {
		vs, ok := f[fl.name]
		if !ok {
			continue
		}
		v := strings.TrimSpace(vs[len(vs)-1])
		switch fl.kind {
		case "int":
			n := 0
			if v != "" {
				var err error
				if n, err = strconv.Atoi(v); err != nil || n < 0 {
					return nil, fmt.Errorf("%s %q: want a whole number, 0 for no limit", fl.label, v)
				}
			}
			pol[fl.name] = n
		case "float":
			x := 0.0
			if v != "" {
				var err error
				if x, err = strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64); err != nil || x < 0 {
					return nil, fmt.Errorf("%s %q: want a percentage, 0 for never", fl.label, v)
				}
			}
			pol[fl.name] = x
		case "duration":
			if v != "" {
				pol[fl.name] = v
			}
		default:
			pol[fl.name] = v
		}
	}
	return pol, nil
}

func (u *UI) createGroup(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/groups"
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	b, err := groupBody(r.PostForm)
	if err != nil {
		return back, &Flash{"error", err.Error()}
	}
	a := u.call(r, http.MethodPost, "/apps/"+url.PathEscape(r.PathValue("app"))+"/groups", b)
	next := back
	if a.err() == "" {
		var g store.Group
		if json.Unmarshal(a.Body, &g) == nil {
			next = back + "/" + url.PathEscape(g.ID)
		}
	}
	return outcome(a, next, "Created group "+r.PostFormValue("name"))
}

func (u *UI) groupPath(r *http.Request) string {
	return "/apps/" + url.PathEscape(r.PathValue("app")) + "/groups/" + url.PathEscape(r.PathValue("group"))
}

func (u *UI) updateGroup(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/groups/" + url.PathEscape(r.PathValue("group"))
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	b, err := groupBody(r.PostForm)
	if err != nil {
		return back, &Flash{"error", err.Error()}
	}
	return outcome(u.call(r, http.MethodPut, u.groupPath(r), b), back, "Saved the group's settings and rollout policy")
}

// groupAction is pause, resume or approve.
func (u *UI) groupAction(what string) func(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	return func(w http.ResponseWriter, r *http.Request) (string, *Flash) {
		back := u.appPath(r) + "/groups/" + url.PathEscape(r.PathValue("group"))
		if err := form(w, r); err != nil {
			return back, &Flash{"error", err.Error()}
		}
		back = localPath(r.PostFormValue("next"), back)
		var body any
		ok := ""
		switch what {
		case "pause":
			body, ok = map[string]string{"reason": strings.TrimSpace(r.PostFormValue("reason"))}, "Paused the group: no machine is offered an update until it is resumed"
		case "resume":
			ok = "Resumed the group: failures before now no longer count towards a halt"
		case "approve":
			body, ok = map[string]string{"version": r.PostFormValue("version")}, "Approved the rollout of "+firstOf(r.PostFormValue("version"), "the channel's version")
		}
		return outcome(u.call(r, http.MethodPost, u.groupPath(r)+"/"+what, body), back, ok)
	}
}

func (u *UI) deleteGroup(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/groups"
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	a := u.call(r, http.MethodDelete, u.groupPath(r), nil)
	if a.err() != "" {
		return outcome(a, back+"/"+url.PathEscape(r.PathValue("group")), "")
	}
	return outcome(a, back, "Deleted the group; its machines stay, without a group")
}

// upload passes the browser's multipart form to the API as it came: the API reads the CSRF
// token before the file and verifies the payload as it arrives.
func (u *UI) upload(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/packages"
	a := u.dispatch(r, http.MethodPost, "/apps/"+url.PathEscape(r.PathValue("app"))+"/packages", r.Header.Get("Content-Type"), r.Body, "")
	if a.err() != "" {
		return outcome(a, back, "")
	}
	var res struct {
		Package     store.Package `json:"package"`
		Publishable bool          `json:"publishable"`
		PublishedTo string        `json:"published_to"`
	}
	if err := json.Unmarshal(a.Body, &res); err != nil {
		return back, &Flash{"error", "the upload's answer: " + err.Error()}
	}
	if !res.Publishable {
		return back, &Flash{"error", fmt.Sprintf("Uploaded %s, but its signature did not verify: %s. It cannot be published.", res.Package.Version, res.Package.SignatureError)}
	}
	msg := fmt.Sprintf("Uploaded %s (%s): signature verified", res.Package.Version, res.Package.Filename)
	if res.PublishedTo != "" {
		msg += ", published on channel " + res.PublishedTo
	}
	return back, &Flash{"ok", msg}
}

func (u *UI) publish(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/packages"
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	back = localPath(r.PostFormValue("next"), back)
	ch := r.PostFormValue("channel")
	a := u.call(r, http.MethodPost, "/apps/"+url.PathEscape(r.PathValue("app"))+"/packages/"+url.PathEscape(r.PathValue("package"))+"/publish",
		map[string]string{"channel": ch})
	return outcome(a, back, fmt.Sprintf("Published %s on channel %s", r.PathValue("package"), ch))
}

func (u *UI) deletePackage(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/packages"
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	a := u.call(r, http.MethodDelete, "/apps/"+url.PathEscape(r.PathValue("app"))+"/packages/"+url.PathEscape(r.PathValue("package")), nil)
	return outcome(a, back, "Deleted package "+r.PathValue("package"))
}

func (u *UI) createChannel(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/packages"
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	back = localPath(r.PostFormValue("next"), back)
	name := strings.TrimSpace(r.PostFormValue("name"))
	a := u.call(r, http.MethodPost, "/apps/"+url.PathEscape(r.PathValue("app"))+"/channels",
		map[string]string{"name": name, "package": r.PostFormValue("package")})
	return outcome(a, back, "Created channel "+name)
}

func (u *UI) updateChannel(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/packages"
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	pkg := r.PostFormValue("package")
	a := u.call(r, http.MethodPut, "/apps/"+url.PathEscape(r.PathValue("app"))+"/channels/"+url.PathEscape(r.PathValue("channel")),
		map[string]string{"package": pkg})
	ok := "Channel " + r.PathValue("channel") + " offers nothing now"
	var ch store.Channel
	if pkg != "" && json.Unmarshal(a.Body, &ch) == nil {
		ok = "Channel " + ch.Name + " now offers " + ch.Version
	}
	return outcome(a, back, ok)
}

func (u *UI) deleteChannel(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	back := u.appPath(r) + "/packages"
	if err := form(w, r); err != nil {
		return back, &Flash{"error", err.Error()}
	}
	a := u.call(r, http.MethodDelete, "/apps/"+url.PathEscape(r.PathValue("app"))+"/channels/"+url.PathEscape(r.PathValue("channel")), nil)
	return outcome(a, back, "Deleted channel "+r.PathValue("channel"))
}

func (u *UI) createUser(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	if err := form(w, r); err != nil {
		return "/admin", &Flash{"error", err.Error()}
	}
	name := strings.TrimSpace(r.PostFormValue("username"))
	a := u.call(r, http.MethodPost, "/users", map[string]string{"username": name, "password": r.PostFormValue("password"), "role": r.PostFormValue("role")})
	return outcome(a, "/admin", fmt.Sprintf("Added %s (%s)", name, r.PostFormValue("role")))
}

func (u *UI) updateUser(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	if err := form(w, r); err != nil {
		return "/admin", &Flash{"error", err.Error()}
	}
	body := map[string]string{}
	if pw := r.PostFormValue("password"); pw != "" {
		body["password"] = pw
	}
	if role := r.PostFormValue("role"); role != "" {
		body["role"] = role
	}
	a := u.call(r, http.MethodPut, "/users/"+url.PathEscape(r.PathValue("user")), body)
	return outcome(a, "/admin", "Changed user "+r.PathValue("user"))
}

func (u *UI) deleteUser(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	if err := form(w, r); err != nil {
		return "/admin", &Flash{"error", err.Error()}
	}
	a := u.call(r, http.MethodDelete, "/users/"+url.PathEscape(r.PathValue("user")), nil)
	return outcome(a, "/admin", "Deleted user "+r.PathValue("user"))
}

// createToken answers with the page itself rather than a redirect: the token's secret is
// shown this once and kept nowhere.
func (u *UI) createToken(w http.ResponseWriter, r *http.Request) {
	if err := form(w, r); err != nil {
		setFlash(w, "error", err.Error())
		http.Redirect(w, r, "/admin", http.StatusSeeOther)
		return
	}
	body := map[string]any{"name": strings.TrimSpace(r.PostFormValue("name")), "role": r.PostFormValue("role"), "user": r.PostFormValue("user")}
	if e := strings.TrimSpace(r.PostFormValue("expires_in")); e != "" {
		body["expires_in"] = e
	}
	a := u.call(r, http.MethodPost, "/tokens", body)
	if a.err() != "" {
		next, f := outcome(a, "/admin", "")
		setFlash(w, f.Kind, f.Message)
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	var res struct {
		Token  store.Token `json:"token"`
		Secret string      `json:"secret"`
	}
	if err := json.Unmarshal(a.Body, &res); err != nil {
		setFlash(w, "error", "the token's answer: "+err.Error())
		http.Redirect(w, r, "/admin", http.StatusSeeOther)
		return
	}
	p := u.begin(w, r, store.RoleAdmin)
	if p == nil {
		return
	}
	if err := u.loadAdmin(r, p); err != nil {
		u.fail(w, r, p, err)
		return
	}
	p.Path = "/admin"
	d := p.Data.(*AdminData)
	d.Secret, d.SecretName = res.Secret, res.Token.Name
	p.Flash = &Flash{"ok", "Created token " + res.Token.Name + ". Copy its secret now: it is not shown again."}
	u.render(w, http.StatusOK, "admin", p)
}

func (u *UI) deleteToken(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	if err := form(w, r); err != nil {
		return "/admin", &Flash{"error", err.Error()}
	}
	a := u.call(r, http.MethodDelete, "/tokens/"+url.PathEscape(r.PathValue("token")), nil)
	return outcome(a, "/admin", "Revoked the token")
}

func (u *UI) unlock(w http.ResponseWriter, r *http.Request) (string, *Flash) {
	if err := form(w, r); err != nil {
		return "/cluster", &Flash{"error", err.Error()}
	}
	back := localPath(r.PostFormValue("next"), "/cluster")
	holder := r.PostFormValue("holder")
	a := u.call(r, http.MethodPost, "/cluster/reboot-lock/unlock", map[string]string{"key": r.PostFormValue("key"), "holder": holder})
	return outcome(a, back, "Released "+holder+"'s hold on the reboot lock")
}

// loginPage is GET /login.
func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"), "/")
	if _, err := u.API.Authenticate(r); err == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	p := &Page{Title: "Log in", Section: "login", Now: u.now(), Path: r.URL.RequestURI(), Flash: takeFlash(w, r), Data: loginData{Next: next}}
	u.render(w, http.StatusOK, "login", p)
}

type loginData struct {
	Next, Username, Error string
}

// login is POST /login: the API's login, its session cookie passed on.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	if err := form(w, r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	next := localPath(r.PostFormValue("next"), "/")
	body := url.Values{"username": {r.PostFormValue("username")}, "password": {r.PostFormValue("password")}}.Encode()
	a := u.dispatch(r, http.MethodPost, "/login", "application/x-www-form-urlencoded", strings.NewReader(body), "")
	if msg := a.err(); msg != "" {
		p := &Page{Title: "Log in", Section: "login", Now: u.now(), Path: "/login",
			Data: loginData{Next: next, Username: r.PostFormValue("username"), Error: strings.TrimPrefix(msg, "not logged in: ")}}
		u.render(w, a.Status, "login", p)
		return
	}
	for _, c := range a.Header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout is POST /logout.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if err := form(w, r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a := u.call(r, http.MethodPost, "/logout", nil)
	for _, c := range a.Header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
	if msg := a.err(); msg != "" && a.Status != http.StatusUnauthorized {
		setFlash(w, "error", msg)
		http.Redirect(w, r, localPath(r.Referer(), "/"), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
