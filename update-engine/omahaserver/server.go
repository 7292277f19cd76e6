// Package omahaserver is a small Omaha 3.0 update server for development and tests: it
// offers the newest payload found in <dir>/<group>/*.cairn to machines tracking that group,
// serves the payload files (with Range support, optionally rate-limited), and records every
// event the machines report, with what the machine said of itself (alias, OEM, aleph
// version). Events mean what they mean to Nebraska (omaha.Kind): 13/1 downloading, 14/1
// downloaded, 800/1 (or update_engine's 3/1) installed, 3/2 with a previous version
// complete, result 0 an error with its code. A machine that reported rolling back from a
// version (error 44) is not offered that version again by its scheduled checks; a check an
// operator asked for on the machine (installsource "ondemandupdate") still is, and the engine
// there declines it (error 35) unless forced.
package omahaserver

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// Paths the server answers on.
const (
	UpdatePath   = "/v1/update/"
	PayloadsPath = "/payloads/"
	EventsPath   = "/events"
)

// Event is one reported event, as recorded in the JSON log.
type Event struct {
	Time            time.Time         `json:"time"`
	AppID           string            `json:"app_id"`
	MachineID       string            `json:"machine_id"`
	Track           string            `json:"track"`
	Version         string            `json:"version"`
	Type            omaha.EventType   `json:"type"`
	Result          omaha.EventResult `json:"result"`
	ErrorCode       omaha.ErrorCode   `json:"error_code,omitempty"`
	PreviousVersion string            `json:"previous_version,omitempty"`
	MachineAlias    string            `json:"machine_alias,omitempty"`
	OEM             string            `json:"oem,omitempty"`
	OEMVersion      string            `json:"oem_version,omitempty"`
	AlephVersion    string            `json:"aleph_version,omitempty"`
}

// Kind is what the event tells about the machine's update.
func (e Event) Kind() omaha.Kind {
	ev := omaha.EventRequest{Type: e.Type, Result: e.Result, ErrorCode: e.ErrorCode, PreviousVersion: e.PreviousVersion}
	return ev.Kind()
}

// Server serves one application's payloads.
type Server struct {
	Dir      string // payloads: <Dir>/<group>/*.cairn
	AppID    string
	EventLog string // JSON-lines file events are appended to; "" keeps them in memory only
	// Rate limits payload downloads to this many bytes per second (0: unlimited), so that
	// tests can interrupt a download half-way.
	Rate int64
	Log  *slog.Logger
	Now  func() time.Time

	mu     sync.Mutex
	events []Event
	hashes map[string]fileHash
}

// LoadEvents reads the events an earlier run recorded in EventLog (a missing file is no
// event), so that a restarted server keeps its log and still knows which machine rolled
// back from which version.
func (s *Server) LoadEvents() error {
	if s.EventLog == "" {
		return nil
	}
	f, err := os.Open(s.EventLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var evs []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("event log %s line %d: %w", s.EventLog, line, err)
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event log %s after line %d: %w", s.EventLog, line, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(evs, s.events...)
	return nil
}

// refused reports whether a machine reported rolling back from a version.
func (s *Server) refused(machine, version string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if ev.ErrorCode == omaha.ErrorCodeRollback && ev.MachineID == machine && ev.PreviousVersion == version {
			return true
		}
	}
	return false
}

type fileHash struct {
	size    int64
	mtime   time.Time
	sha1    string // base64
	sha256  string // hex
	version string
}

// Handler returns the HTTP handler of the server.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+UpdatePath, s.update)
	mux.HandleFunc("GET "+PayloadsPath, s.payload)
	mux.HandleFunc("GET "+EventsPath, s.listEvents)
	return mux
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
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
	now := s.now().UTC()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	resp := &omaha.Response{Protocol: omaha.Protocol, Server: "cairn-omaha-server",
		DayStart: &omaha.DayStart{ElapsedSeconds: strconv.Itoa(int(now.Sub(midnight) / time.Second))}}
	for _, app := range req.Apps {
		resp.Apps = append(resp.Apps, s.answer(r, req.InstallSource, app))
	}
	b, err := omaha.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	if _, err := w.Write(b); err != nil {
		s.log().Warn("writing the response", "client", r.RemoteAddr, "err", err)
	}
}

func (s *Server) answer(r *http.Request, installSource string, app *omaha.AppRequest) *omaha.AppResponse {
	out := &omaha.AppResponse{ID: app.ID, Status: omaha.StatusOK}
	if !omaha.SameApp(app.ID, s.AppID) {
		out.Status = omaha.StatusUnknownApplication
		return out
	}
	for _, ev := range app.Events {
		s.record(Event{Time: s.now().UTC(), AppID: app.ID, MachineID: app.MachineID, Track: app.Track, Version: app.Version,
			Type: ev.Type, Result: ev.Result, ErrorCode: ev.ErrorCode, PreviousVersion: ev.PreviousVersion,
			MachineAlias: app.MachineAlias, OEM: app.OEM, OEMVersion: app.OEMVersion, AlephVersion: app.AlephVersion})
		out.Events = append(out.Events, &omaha.EventResponse{Status: omaha.StatusOK})
	}
	if app.Ping != nil {
		out.Ping = &omaha.PingResponse{Status: omaha.StatusOK}
	}
	if app.UpdateCheck == nil {
		return out
	}
	out.UpdateCheck = &omaha.UpdateResponse{Status: omaha.StatusNoUpdate}
	name, fh, err := s.newest(app.Track, func(version string) bool {
		if installSource != omaha.InstallSourceOnDemand && s.refused(app.MachineID, version) {
			s.log().Info("not offering a version the machine rolled back from", "machine", app.MachineID, "version", version)
			return true
		}
		return false
	})
	if err != nil {
		s.log().Warn("looking for payloads", "group", app.Track, "err", err)
		out.UpdateCheck.Status = omaha.StatusInternalError
		return out
	}
	if name == "" || payload.CompareVersions(fh.version, app.Version) <= 0 {
		return out
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	sum, _ := hex.DecodeString(fh.sha256)
	out.UpdateCheck = &omaha.UpdateResponse{
		Status: omaha.StatusOK,
		URLs:   &omaha.URLs{URLs: []omaha.URL{{CodeBase: fmt.Sprintf("%s://%s%s%s/", scheme, r.Host, PayloadsPath, app.Track)}}},
		Manifest: &omaha.Manifest{
			Version:  fh.version,
			Packages: []omaha.Package{{Name: name, SHA1: fh.sha1, SHA256: fh.sha256, Size: fh.size, Required: true}},
			Actions: []omaha.Action{{Event: "postinstall", DisplayVersion: fh.version,
				SHA256: base64.StdEncoding.EncodeToString(sum), DisablePayloadBackoff: true}},
		},
	}
	s.log().Info("offering update", "machine", app.MachineID, "from", app.Version, "to", fh.version, "group", app.Track)
	return out
}

func (s *Server) record(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	s.log().Info("event", "machine", ev.MachineID, "alias", ev.MachineAlias, "version", ev.Version, "kind", ev.Kind(),
		"type", int(ev.Type), "result", int(ev.Result), "errorcode", int(ev.ErrorCode), "previous", ev.PreviousVersion)
	if s.EventLog == "" {
		return
	}
	// Rewrite the whole log atomically: it is small, and a reader never sees half a line.
	err := atomicfile.Write(s.EventLog, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, e := range s.events {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log().Error("writing event log", "path", s.EventLog, "err", err)
	}
}

func validGroup(g string) bool {
	return g != "" && g != "." && g != ".." && !strings.ContainsAny(g, "/\\\x00")
}

// newest finds the payload with the highest version in the group's directory that skip
// does not refuse.
func (s *Server) newest(group string, skip func(version string) bool) (string, fileHash, error) {
	if !validGroup(group) {
		return "", fileHash{}, nil
	}
	files, err := filepath.Glob(filepath.Join(s.Dir, group, "*.cairn"))
	if err != nil {
		return "", fileHash{}, err
	}
	var bestName string
	var best fileHash
	for _, f := range files {
		fh, err := s.hash(f)
		if err != nil {
			s.log().Warn("skipping payload", "path", f, "err", err)
			continue
		}
		if skip(fh.version) {
			continue
		}
		if bestName == "" || payload.CompareVersions(fh.version, best.version) > 0 {
			bestName, best = filepath.Base(f), fh
		}
	}
	return bestName, best, nil
}

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
	rel := strings.TrimPrefix(path.Clean(r.URL.Path), PayloadsPath)
	group, name, ok := strings.Cut(rel, "/")
	if !ok || !validGroup(group) || !validGroup(name) || !strings.HasSuffix(name, ".cairn") {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(s.Dir, group, name))
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
	if s.Rate > 0 {
		w = &throttled{ResponseWriter: w, rate: s.Rate, ctx: r}
	}
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// throttled slows writes down to rate bytes per second.
type throttled struct {
	http.ResponseWriter
	rate int64
	ctx  *http.Request
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
		case <-t.ctx.Context().Done():
			return written, t.ctx.Context().Err()
		case <-time.After(time.Duration(int64(n) * int64(time.Second) / t.rate)):
		}
	}
	return written, nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(s.Events()); err != nil {
		s.log().Warn("writing the events", "client", r.RemoteAddr, "err", err)
	}
}
