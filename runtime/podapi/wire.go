package podapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/appc/spec/schema/types"
)

// ErrorCode classifies a failed request, so that a client can tell the cases apart
// (errors.Is with the sentinel errors) and a CRI server can map them to gRPC codes.
type ErrorCode string

// The error codes, each with its sentinel error.
const (
	CodeNotFound ErrorCode = "not-found" // no such app
	CodeExists   ErrorCode = "exists"    // an app (or volume) of that name is there already
	CodeInvalid  ErrorCode = "invalid"   // a malformed request
	CodeState    ErrorCode = "state"     // not possible in the app's (or pod's) state
)

// Sentinel errors, for errors.Is on both sides of the socket.
var (
	ErrNotFound = errors.New("no such app in the pod")
	ErrExists   = errors.New("already in the pod")
	ErrInvalid  = errors.New("invalid request")
	ErrState    = errors.New("not possible in this state")
)

var codes = []struct {
	code ErrorCode
	err  error
}{{CodeNotFound, ErrNotFound}, {CodeExists, ErrExists}, {CodeInvalid, ErrInvalid}, {CodeState, ErrState}}

// MaxLine bounds a request or reply line: an add request carries a whole app (its command,
// environment, isolators, mounts), far below this; anything longer is refused unread.
const MaxLine = 1 << 20

// ErrorReply is the reply for err: its message and the code of the sentinel it wraps.
func ErrorReply(err error) *Reply {
	r := &Reply{Error: err.Error()}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			r.Code = c.code
			break
		}
	}
	if r.Error == "" {
		r.Error = "unknown error"
	}
	return r
}

// Err is the error a reply carries, wrapping the sentinel of its code; nil for success.
func (r *Reply) Err() error {
	if r.Error == "" && r.Code == "" {
		return nil
	}
	msg := r.Error
	for _, c := range codes {
		if r.Code == c.code {
			return &replyError{msg: msg, sentinel: c.err}
		}
	}
	return errors.New(msg)
}

// replyError is a supervisor's error as a client sees it: the supervisor's message, which
// already says what the sentinel says, and the sentinel for errors.Is.
type replyError struct {
	msg      string
	sentinel error
}

func (e *replyError) Error() string { return e.msg }
func (e *replyError) Unwrap() error { return e.sentinel }

// readLine reads one line of at most MaxLine bytes, without its newline.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > MaxLine+1 {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrInvalid, MaxLine)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, fmt.Errorf("%w: line not terminated", ErrInvalid)
		default:
			return nil, err
		}
	}
}

// ReadRequest reads and checks one request line. The bytes come from any local client of
// the supervisor, so they are bounded and every field is checked (Validate); a panic of the
// appc schema package on malformed input is an error.
func ReadRequest(r *bufio.Reader) (*Request, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	return DecodeRequest(line)
}

// DecodeRequest decodes and checks one request line (without its newline).
func DecodeRequest(line []byte) (*Request, error) {
	if len(line) > MaxLine {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrInvalid, MaxLine)
	}
	var req Request
	if err := guard(func() error { return json.Unmarshal(line, &req) }); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return &req, nil
}

// EncodeRequest is the request's line, newline included. It fails on a request that
// Validate refuses, so that a client learns of its mistake without a round trip.
func EncodeRequest(req *Request) ([]byte, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var b []byte
	if err := guard(func() (err error) { b, err = json.Marshal(req); return err }); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return append(b, '\n'), nil
}

// ReadReply reads one reply line.
func ReadReply(r *bufio.Reader) (*Reply, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	var rep Reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("supervisor reply: %w", err)
	}
	return &rep, nil
}

// WriteReply writes one reply line.
func WriteReply(w io.Writer, rep *Reply) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// guard runs f, turning a panic (the appc schema package panics on some malformed values)
// into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed (%v)", r)
		}
	}()
	return f()
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Validate checks a request: a known method with the fields it needs, app names that are
// appc names (they become path elements), absolute clean paths, sane numbers.
func (req *Request) Validate() error {
	needApp := true
	switch req.Method {
	case MethodAdd:
		needApp = false
		if req.App != "" {
			return invalid("add names its app in add.app.name, not app")
		}
		if req.Add == nil {
			return invalid("add without the app to add")
		}
		if err := req.Add.validate(); err != nil {
			return err
		}
	case MethodStatus:
		needApp = false
	case MethodReopenLogs:
		needApp = req.App != ""
	case MethodStart:
	case MethodStop, MethodRemove:
		if req.Timeout != nil && *req.Timeout < 0 {
			return invalid("negative timeout %s", *req.Timeout)
		}
	case MethodAttach:
		if !req.Stdin && !req.Stdout && !req.Stderr {
			return invalid("attach to none of stdin, stdout and stderr")
		}
	case MethodResize:
		if req.Rows == 0 || req.Cols == 0 {
			return invalid("window size %dx%d", req.Cols, req.Rows)
		}
	case MethodUpdate:
		if req.Resources == nil {
			return invalid("update without resources")
		}
		if err := req.Resources.Validate(req.App); err != nil {
			return err
		}
	default:
		return invalid("unknown method %q", req.Method)
	}
	if req.Method != MethodAdd && req.Add != nil {
		return invalid("%s with an app to add", req.Method)
	}
	if req.Method != MethodUpdate && req.Resources != nil {
		return invalid("%s with resources", req.Method)
	}
	if needApp {
		if err := checkName("app", req.App); err != nil {
			return err
		}
	}
	return nil
}

func checkName(what, name string) error {
	if _, err := types.NewACName(name); err != nil {
		return invalid("%s name %q: %v", what, name, err)
	}
	return nil
}

// checkPath accepts an absolute, clean path that overlayfs options and mount tables can
// carry.
func checkPath(what, p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsAny(p, ":,\n\x00") {
		return invalid("%s %q: want an absolute clean path without ':', ',' or newlines", what, p)
	}
	return nil
}

func (a *AddRequest) validate() error {
	ra := &a.App
	if err := checkName("app", string(ra.Name)); err != nil {
		return err
	}
	if ra.App == nil || len(ra.App.Exec) == 0 || ra.App.Exec[0] == "" {
		return invalid("app %s: no command", ra.Name)
	}
	if len(a.Image.Layers) == 0 {
		return invalid("app %s: image without layers", ra.Name)
	}
	for _, l := range a.Image.Layers {
		if err := checkPath("image layer", l); err != nil {
			return err
		}
	}
	switch a.Stdin {
	case "", StdinNull, StdinStream, StdinTTY:
	default:
		return invalid("app %s: stdin %q (want null, stream or tty)", ra.Name, a.Stdin)
	}
	if a.LogPath != "" {
		if err := checkPath("log path", a.LogPath); err != nil {
			return err
		}
	}
	if a.Linux != nil {
		if err := a.Linux.Validate(string(ra.Name)); err != nil {
			return err
		}
	}
	seen := map[types.ACName]bool{}
	for _, v := range a.Volumes {
		if err := checkName("volume", string(v.Name)); err != nil {
			return err
		}
		if seen[v.Name] {
			return invalid("volume %s given twice", v.Name)
		}
		seen[v.Name] = true
		switch v.Kind {
		case "empty":
		case "host":
			if err := checkPath("volume "+string(v.Name)+" source", v.Source); err != nil {
				return err
			}
		default:
			return invalid("volume %s: kind %q (want host or empty)", v.Name, v.Kind)
		}
	}
	for _, m := range ra.Mounts {
		if m.AppVolume != nil {
			return invalid("app %s: mount %s: volumes go in add.volumes, not inside the mount", ra.Name, m.Path)
		}
		if err := checkName("volume", string(m.Volume)); err != nil {
			return err
		}
		if !path.IsAbs(m.Path) || strings.ContainsRune(m.Path, '\x00') {
			return invalid("app %s: mount path %q is not absolute", ra.Name, m.Path)
		}
	}
	// Encoding runs checks of the appc schema that decoding skips; the supervisor writes
	// the app and its volumes into the pod manifest, so they must survive them.
	if err := guard(func() error { _, err := json.Marshal(a); return err }); err != nil {
		return invalid("app %s: %v", ra.Name, err)
	}
	return nil
}
