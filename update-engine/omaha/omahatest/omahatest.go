// Package omahatest is a fake Omaha server for the update engine's tests: it offers the
// newest payload in Dir/<track>/*.cairn to machines of that track, serves the payload files
// (with Range, optionally slowed down), and records the events machines report, with what
// they say of themselves. It has no policy and keeps nothing across runs: the update
// service is cairn-console (console/), whose own tests run the engine against it. It is for
// tests only.
package omahatest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// Paths the server answers on.
const (
	UpdatePath   = "/v1/update/"
	PayloadsPath = "/payloads/"
)

// Event is one reported event with the request's facts about the machine.
type Event struct {
	Time            time.Time
	AppID           string
	MachineID       string
	Track           string
	Version         string
	Type            omaha.EventType
	Result          omaha.EventResult
	ErrorCode       omaha.ErrorCode
	PreviousVersion string
	MachineAlias    string
	OEM             string
	OEMVersion      string
	AlephVersion    string
}

// Kind is what the event tells about the machine's update, as Nebraska reads it.
func (e Event) Kind() omaha.Kind {
	ev := omaha.EventRequest{Type: e.Type, Result: e.Result, ErrorCode: e.ErrorCode, PreviousVersion: e.PreviousVersion}
	return ev.Kind()
}

// Server is the fake server.
type Server struct {
	Dir   string // payloads: Dir/<track>/*.cairn
	AppID string
	// Rate limits payload downloads to this many bytes per second (0: unlimited), so that
	// a test can interrupt a download half-way.
	Rate int64

	mu     sync.Mutex
	events []Event
	hashes map[string]fileHash
}

type fileHash struct {
	size         int64
	mtime        time.Time
	sha1, sha256 string
	version      string
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+UpdatePath, s.update)
	mux.HandleFunc("GET "+PayloadsPath, s.payload)
	return mux
}

// Events returns the events recorded so far.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	req, err := omaha.ParseRequest(http.MaxBytesReader(w, r.Body, omaha.MaxMessageSize))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := &omaha.Response{Protocol: omaha.Protocol, Server: "omahatest", DayStart: &omaha.DayStart{ElapsedSeconds: "0"}}
	for _, app := range req.Apps {
		resp.Apps = append(resp.Apps, s.answer(r, app))
	}
	b, err := omaha.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Write(b) //nolint:errcheck // the client went away
}

func (s *Server) answer(r *http.Request, app *omaha.AppRequest) *omaha.AppResponse {
	out := &omaha.AppResponse{ID: app.ID, Status: omaha.StatusOK}
	if !omaha.SameApp(app.ID, s.AppID) {
		out.Status = omaha.StatusUnknownApplication
		return out
	}
	for _, ev := range app.Events {
		s.mu.Lock()
		s.events = append(s.events, Event{Time: time.Now().UTC(), AppID: app.ID, MachineID: app.MachineID, Track: app.Track, Version: app.Version,
			Type: ev.Type, Result: ev.Result, ErrorCode: ev.ErrorCode, PreviousVersion: ev.PreviousVersion,
			MachineAlias: app.MachineAlias, OEM: app.OEM, OEMVersion: app.OEMVersion, AlephVersion: app.AlephVersion})
		s.mu.Unlock()
		out.Events = append(out.Events, &omaha.EventResponse{Status: omaha.StatusOK})
	}
	if app.Ping != nil {
		out.Ping = &omaha.PingResponse{Status: omaha.StatusOK}
	}
	if app.UpdateCheck == nil {
		return out
	}
	out.UpdateCheck = &omaha.UpdateResponse{Status: omaha.StatusNoUpdate}
	name, fh, err := s.newest(app.Track)
	if err != nil {
		out.UpdateCheck.Status = omaha.StatusInternalError
		return out
	}
	if name == "" || payload.CompareVersions(fh.version, app.Version) <= 0 {
		return out
	}
	sum, _ := hex.DecodeString(fh.sha256)
	out.UpdateCheck = &omaha.UpdateResponse{
		Status: omaha.StatusOK,
		URLs:   &omaha.URLs{URLs: []omaha.URL{{CodeBase: fmt.Sprintf("http://%s%s%s/", r.Host, PayloadsPath, app.Track)}}},
		Manifest: &omaha.Manifest{
			Version:  fh.version,
			Packages: []omaha.Package{{Name: name, SHA1: fh.sha1, SHA256: fh.sha256, Size: fh.size, Required: true}},
			Actions:  []omaha.Action{{Event: "postinstall", DisplayVersion: fh.version, SHA256: base64.StdEncoding.EncodeToString(sum)}},
		},
	}
	return out
}

func validName(g string) bool {
	return g != "" && g != "." && g != ".." && !strings.ContainsAny(g, "/\\\x00")
}

// newest finds the payload with the highest version in the track's directory.
func (s *Server) newest(track string) (string, fileHash, error) {
	if !validName(track) {
		return "", fileHash{}, nil
	}
	files, err := filepath.Glob(filepath.Join(s.Dir, track, "*.cairn"))
	if err != nil {
		return "", fileHash{}, err
	}
	var bestName string
	var best fileHash
	for _, f := range files {
		fh, err := s.hash(f)
		if err != nil {
			continue // not a payload
		}
		if bestName == "" || payload.CompareVersions(fh.version, best.version) > 0 {
			bestName, best = filepath.Base(f), fh
		}
	}
	return bestName, best, nil
}

// hash reads a payload's version and hashes, once per file version.
func (s *Server) hash(p string) (fileHash, error) {
	st, err := os.Stat(p)
	if err != nil {
		return fileHash{}, err
	}
	s.mu.Lock()
	fh, ok := s.hashes[p]
	s.mu.Unlock()
	if ok && fh.size == st.Size() && fh.mtime.Equal(st.ModTime()) {
		return fh, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fileHash{}, err
	}
	defer f.Close()
	h, err := payload.ReadHeader(f)
	if err != nil {
		return fileHash{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fileHash{}, err
	}
	h1, h256 := sha1.New(), sha256.New()
	if _, err := io.Copy(io.MultiWriter(h1, h256), f); err != nil {
		return fileHash{}, err
	}
	fh = fileHash{size: st.Size(), mtime: st.ModTime(), version: h.Manifest.Version,
		sha1: base64.StdEncoding.EncodeToString(h1.Sum(nil)), sha256: hex.EncodeToString(h256.Sum(nil))}
	s.mu.Lock()
	if s.hashes == nil {
		s.hashes = map[string]fileHash{}
	}
	s.hashes[p] = fh
	s.mu.Unlock()
	return fh, nil
}

func (s *Server) payload(w http.ResponseWriter, r *http.Request) {
	track, name, ok := strings.Cut(strings.TrimPrefix(path.Clean(r.URL.Path), PayloadsPath), "/")
	if !ok || !validName(track) || !validName(name) || !strings.HasSuffix(name, ".cairn") {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(s.Dir, track, name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	rate := s.Rate
	s.mu.Unlock()
	if rate > 0 {
		w = &throttled{ResponseWriter: w, rate: rate, r: r}
	}
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// SetRate changes the download rate (bytes per second, 0 for unlimited) of later downloads.
func (s *Server) SetRate(rate int64) {
	s.mu.Lock()
	s.Rate = rate
	s.mu.Unlock()
}

// throttled slows writes down to rate bytes per second.
type throttled struct {
	http.ResponseWriter
	rate int64
	r    *http.Request
}

func (t *throttled) Write(p []byte) (int, error) {
	written := 0
	chunk := max(int(t.rate/20), 1)
	for len(p) > 0 {
		n := min(chunk, len(p))
		m, err := t.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[n:]
		select {
		case <-t.r.Context().Done():
			return written, t.r.Context().Err()
		case <-time.After(time.Duration(int64(n) * int64(time.Second) / t.rate)):
		}
	}
	return written, nil
}
