package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Hub tells live pages that the console recorded a change: the update service's requests,
// the API's changes, the rollout loop's passes, a new snapshot of etcd. It carries no
// data: a page that hears of a change renders its fragments again from the database and
// sends those that differ, so that what a page shows is never a replay of events that it
// could have missed.
type Hub struct {
	mu sync.Mutex
	ch chan struct{}
	n  uint64
}

// Publish says that something changed.
func (h *Hub) Publish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	if h.ch != nil {
		close(h.ch)
		h.ch = nil
	}
}

// Changed is closed at the next Publish. Take it before reading what to show, so that a
// change made during the read is not missed.
func (h *Hub) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = make(chan struct{})
	}
	return h.ch
}

// Published counts the changes published so far.
func (h *Hub) Published() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// fragment is one live part of a page: the element of that id is replaced by html.
type fragment struct {
	ID   string        `json:"id"`
	HTML template.HTML `json:"html"`
}

func hashOf(s template.HTML) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	return fmt.Sprintf("%016x", h.Sum64())
}

// renderFrags renders a view's live fragments for p.
func (u *UI) renderFrags(v *view, p *Page) (map[string]template.HTML, error) {
	out := map[string]template.HTML{}
	for _, name := range v.frags {
		var b bytes.Buffer
		if err := u.base.ExecuteTemplate(&b, name, p); err != nil {
			return nil, fmt.Errorf("fragment %s: %w", name, err)
		}
		out[name] = template.HTML(b.String()) //nolint:gosec // rendered by html/template
	}
	return out, nil
}

// liveURL is the stream of a page, with the hashes of the fragments it was rendered with.
func liveURL(page string, frags map[string]template.HTML) string {
	ids := make([]string, 0, len(frags))
	for id := range frags {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var hs []string
	for _, id := range ids {
		hs = append(hs, id+":"+hashOf(frags[id]))
	}
	q := url.Values{"page": {page}, "h": {strings.Join(hs, ",")}}
	return "/events/stream?" + q.Encode()
}

func parseHashes(s string) map[string]string {
	out := map[string]string{}
	for p := range strings.SplitSeq(s, ",") {
		if id, h, ok := strings.Cut(p, ":"); ok {
			out[id] = h
		}
	}
	return out
}

// stream is GET /events/stream?page=PATH&h=HASHES: server-sent events for the page at PATH.
// Each "fragments" event is a JSON list of {id, html}: the page's live fragments that
// changed since it last heard (at first, since the hashes it was rendered with). A
// "logout" event says the session ended.
func (u *UI) stream(w http.ResponseWriter, r *http.Request) {
	if _, err := u.API.Authenticate(r); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	v, pr, err := u.lookupView(r.Context(), r.URL.Query().Get("page"))
	if err != nil {
		status := http.StatusBadRequest
		if !strings.Contains(err.Error(), errBadQuery.Error()) {
			status = http.StatusNotFound
		}
		http.Error(w, err.Error(), status)
		return
	}
	if !v.live {
		http.Error(w, "page "+pr.URL.Path+" does not change live", http.StatusNotFound)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) //nolint:errcheck // a server without write deadlines
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	fl.Flush()

	known := parseHashes(r.URL.Query().Get("h"))
	interval, refresh := u.LiveInterval, u.Refresh
	if interval <= 0 {
		interval = time.Second
	}
	if refresh <= 0 {
		refresh = 30 * time.Second
	}
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	var last time.Time
	for {
		changed := u.Hub.Changed()
		c, err := u.API.Authenticate(r)
		if err != nil {
			fmt.Fprint(w, "event: logout\ndata: {}\n\n")
			fl.Flush()
			return
		}
		p := &Page{Caller: c, Now: u.now(), Path: pr.URL.RequestURI(), Cluster: u.Cluster.Snapshot()}
		if c.Session != nil {
			p.CSRF = c.Session.CSRF
		}
		last = time.Now()
		var send []fragment
		if err := v.load(pr, p); err != nil {
			u.log().Debug("web: live page", "page", pr.URL.Path, "err", err)
		} else if frags, err := u.renderFrags(v, p); err != nil {
			u.log().Error("web: live page", "page", pr.URL.Path, "err", err)
		} else {
			for _, id := range v.frags {
				if hs := hashOf(frags[id]); known[id] != hs {
					known[id] = hs
					send = append(send, fragment{ID: id, HTML: frags[id]})
				}
			}
		}
		if len(send) > 0 {
			b, _ := json.Marshal(send)
			fmt.Fprintf(w, "event: fragments\ndata: %s\n\n", b)
			fl.Flush()
		}
		timer := time.NewTimer(refresh)
	wait:
		for {
			select {
			case <-r.Context().Done():
				timer.Stop()
				return
			case <-u.quit:
				timer.Stop()
				return
			case <-heartbeat.C:
				if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
					timer.Stop()
					return
				}
				fl.Flush()
			case <-changed:
				break wait
			case <-timer.C:
				break wait
			}
		}
		timer.Stop()
		// At most one render per interval, however many changes a busy fleet makes.
		if d := interval - time.Since(last); d > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-u.quit:
				return
			case <-time.After(d):
			}
		}
	}
}
