// Package omaha holds the Omaha protocol 3.0 messages as CoreOS update_engine sends them and
// Nebraska answers them: the request (app, ping, updatecheck, event), the response
// (updatecheck with urls and manifest, event and ping acknowledgements), the event and error
// codes, and a small HTTP client. It has no dependencies beyond the standard library.
package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Protocol is the only Omaha protocol version spoken.
const Protocol = "3.0"

// MaxMessageSize bounds a request or response body read from the network.
const MaxMessageSize = 1 << 20

// Install sources (the request's installsource), as CoreOS update_engine sent them: a check
// the client's own schedule made, or one somebody asked for on the machine.
const (
	InstallSourceScheduler = "scheduler"
	InstallSourceOnDemand  = "ondemandupdate"
)

// EventType is an <event eventtype>, numbered as in update_engine, plus Nebraska's 800.
type EventType int

const (
	EventTypeUnknown                EventType = 0
	EventTypeDownloadComplete       EventType = 1
	EventTypeInstallComplete        EventType = 2
	EventTypeUpdateComplete         EventType = 3
	EventTypeUpdateDownloadStarted  EventType = 13
	EventTypeUpdateDownloadFinished EventType = 14
	// EventTypeUpdateInstalled is Nebraska's (and CoreRoller's) "installed, completion
	// prevented by the instance": written, but not yet running. Nebraska records it for any
	// application, where update_engine's 3/1 counts as complete for every application but
	// Flatcar's.
	EventTypeUpdateInstalled EventType = 800
)

func (t EventType) String() string {
	switch t {
	case EventTypeDownloadComplete:
		return "download complete"
	case EventTypeInstallComplete:
		return "install complete"
	case EventTypeUpdateComplete:
		return "update complete"
	case EventTypeUpdateDownloadStarted:
		return "download started"
	case EventTypeUpdateDownloadFinished:
		return "download finished"
	case EventTypeUpdateInstalled:
		return "update installed"
	}
	return fmt.Sprintf("event type %d", int(t))
}

// EventResult is an <event eventresult>.
type EventResult int

const (
	EventResultError         EventResult = 0
	EventResultSuccess       EventResult = 1
	EventResultSuccessReboot EventResult = 2
	EventResultDeferred      EventResult = 9
)

func (r EventResult) String() string {
	switch r {
	case EventResultError:
		return "error"
	case EventResultSuccess:
		return "success"
	case EventResultSuccessReboot:
		return "success, rebooted"
	case EventResultDeferred:
		return "deferred"
	}
	return fmt.Sprintf("event result %d", int(r))
}

// ErrorCode is an <event errorcode>. Codes below 1000 are Flatcar update_engine's action
// codes (its action_processor.h), the table Nebraska's console decodes, so that a Cairn
// host's errors read there as a Flatcar host's do; codes from 1000 up are Cairn's own, for
// failures update_engine had no code for.
type ErrorCode int

const (
	ErrorCodeSuccess                  ErrorCode = 0
	ErrorCodeError                    ErrorCode = 1
	ErrorCodeOmahaRequestError        ErrorCode = 2
	ErrorCodeInstallDeviceOpenError   ErrorCode = 7
	ErrorCodeDownloadTransferError    ErrorCode = 9
	ErrorCodePayloadHashMismatch      ErrorCode = 10
	ErrorCodePayloadSizeMismatch      ErrorCode = 11
	ErrorCodePayloadVerification      ErrorCode = 12
	ErrorCodeDownloadWriteError       ErrorCode = 14
	ErrorCodeNewRootfsVerification    ErrorCode = 15
	ErrorCodeNewKernelVerification    ErrorCode = 16
	ErrorCodePayloadPubKeyVerify      ErrorCode = 18
	ErrorCodeOmahaResponseInvalid     ErrorCode = 34
	ErrorCodeOmahaErrorInHTTPResponse ErrorCode = 37

	// ErrorCodeUpdateIgnoredPerPolicy: the machine declined the offered version (update_engine's
	// code for an offered update it ignores); Cairn sends it for a version it rolled back from.
	ErrorCodeUpdateIgnoredPerPolicy ErrorCode = 35
	// ErrorCodeRollback: the machine booted back into the previous version after an update
	// (the new slot ran out of boot tries without being marked good). Flatcar's RollbackError.
	ErrorCodeRollback ErrorCode = 44

	// ErrorCodeWrongBoard: the payload is for another board.
	ErrorCodeWrongBoard ErrorCode = 1001
	// ErrorCodeNotNewer: the payload's version is not newer than the running one.
	ErrorCodeNotNewer ErrorCode = 1002
	// ErrorCodeSetBootError: the boot entry of the new slot could not be written.
	ErrorCodeSetBootError ErrorCode = 1003
	// ErrorCodeUpdateCanceled: an installed update was undone on the machine
	// (update_engine_client -reset_status) before it was booted.
	ErrorCodeUpdateCanceled ErrorCode = 1004
	// ErrorCodeInterrupted: the engine stopped (or the machine went down) in the middle of
	// an update; the next check starts over.
	ErrorCodeInterrupted ErrorCode = 1005
)

func (c ErrorCode) String() string {
	switch c {
	case ErrorCodeSuccess:
		return "success"
	case ErrorCodeError:
		return "error"
	case ErrorCodeOmahaRequestError:
		return "omaha request error"
	case ErrorCodeInstallDeviceOpenError:
		return "install device open error"
	case ErrorCodeDownloadTransferError:
		return "download transfer error"
	case ErrorCodePayloadHashMismatch:
		return "payload hash mismatch"
	case ErrorCodePayloadSizeMismatch:
		return "payload size mismatch"
	case ErrorCodePayloadVerification:
		return "payload verification error"
	case ErrorCodeDownloadWriteError:
		return "download write error"
	case ErrorCodeNewRootfsVerification:
		return "new rootfs verification error"
	case ErrorCodeNewKernelVerification:
		return "new kernel verification error"
	case ErrorCodePayloadPubKeyVerify:
		return "payload public key verification error"
	case ErrorCodeOmahaResponseInvalid:
		return "omaha response invalid"
	case ErrorCodeUpdateIgnoredPerPolicy:
		return "update ignored per policy"
	case ErrorCodeOmahaErrorInHTTPResponse:
		return "omaha error in HTTP response"
	case ErrorCodeRollback:
		return "rollback"
	case ErrorCodeWrongBoard:
		return "wrong board"
	case ErrorCodeNotNewer:
		return "not newer"
	case ErrorCodeSetBootError:
		return "set boot entry error"
	case ErrorCodeUpdateCanceled:
		return "update canceled"
	case ErrorCodeInterrupted:
		return "update interrupted"
	}
	return fmt.Sprintf("error code %d", int(c))
}

// Request is an Omaha <request>.
type Request struct {
	XMLName        xml.Name      `xml:"request"`
	Protocol       string        `xml:"protocol,attr"`
	Version        string        `xml:"version,attr,omitempty"`
	UpdaterVersion string        `xml:"updaterversion,attr,omitempty"`
	InstallSource  string        `xml:"installsource,attr,omitempty"`
	IsMachine      Int           `xml:"ismachine,attr,omitempty"`
	OS             *OS           `xml:"os"`
	Apps           []*AppRequest `xml:"app"`
}

// OS is the <os> element.
type OS struct {
	Platform    string `xml:"platform,attr,omitempty"`
	Version     string `xml:"version,attr,omitempty"`
	ServicePack string `xml:"sp,attr,omitempty"`
	Arch        string `xml:"arch,attr,omitempty"`
}

// AppRequest is a request's <app>. Track is the update group (GROUP in update.conf). The
// machine's alias, OEM, OEM version and aleph version (the version first installed) are
// CoreOS update_engine's extensions, which Nebraska shows with the instance; Report is
// Cairn's (Namespace), which other servers ignore.
type AppRequest struct {
	ID           string          `xml:"appid,attr"`
	Version      string          `xml:"version,attr,omitempty"`
	Track        string          `xml:"track,attr,omitempty"`
	BootID       string          `xml:"bootid,attr,omitempty"`
	MachineID    string          `xml:"machineid,attr,omitempty"`
	MachineAlias string          `xml:"machinealias,attr,omitempty"`
	OEM          string          `xml:"oem,attr,omitempty"`
	OEMVersion   string          `xml:"oemversion,attr,omitempty"`
	AlephVersion string          `xml:"alephversion,attr,omitempty"`
	Board        string          `xml:"board,attr,omitempty"`
	Lang         string          `xml:"lang,attr,omitempty"`
	DeltaOK      Bool            `xml:"delta_okay,attr,omitempty"`
	Ping         *PingRequest    `xml:"ping"`
	UpdateCheck  *UpdateCheck    `xml:"updatecheck"`
	Events       []*EventRequest `xml:"event"`
	Report
}

// PingRequest is <ping active="1">.
type PingRequest struct {
	Active Int `xml:"active,attr,omitempty"`
}

// UpdateCheck is the request's <updatecheck>.
type UpdateCheck struct {
	TargetVersionPrefix string `xml:"targetversionprefix,attr,omitempty"`
}

// EventRequest is a request's <event>. On a rollback, Cairn's engine adds (in Namespace)
// the boot tries the failed version had and the tries it had left, from its slot's boot
// counter.
type EventRequest struct {
	Type            EventType   `xml:"eventtype,attr"`
	Result          EventResult `xml:"eventresult,attr"`
	ErrorCode       ErrorCode   `xml:"errorcode,attr,omitempty"`
	PreviousVersion string      `xml:"previousversion,attr,omitempty"`
	TriesDone       Int         `xml:"https://github.com/cairn-os/cairn triesdone,attr,omitempty"`
	TriesLeft       Int         `xml:"https://github.com/cairn-os/cairn triesleft,attr,omitempty"`
}

// Response is an Omaha <response>.
type Response struct {
	XMLName  xml.Name       `xml:"response"`
	Protocol string         `xml:"protocol,attr"`
	Server   string         `xml:"server,attr,omitempty"`
	DayStart *DayStart      `xml:"daystart"`
	Apps     []*AppResponse `xml:"app"`
}

// DayStart is <daystart elapsed_seconds>. It is kept as sent: the engine does not use it,
// and update_engine did not fail on a value that is not a number either.
type DayStart struct {
	ElapsedSeconds string `xml:"elapsed_seconds,attr"`
}

// App statuses and update check statuses.
const (
	StatusOK                 = "ok"
	StatusNoUpdate           = "noupdate"
	StatusUnknownApplication = "error-unknownApplication"
	StatusInternalError      = "error-internal"
)

// AppResponse is a response's <app>.
type AppResponse struct {
	ID          string           `xml:"appid,attr"`
	Status      string           `xml:"status,attr"`
	Ping        *PingResponse    `xml:"ping"`
	UpdateCheck *UpdateResponse  `xml:"updatecheck"`
	Events      []*EventResponse `xml:"event"`
}

// PingResponse and EventResponse acknowledge a ping and each event.
type PingResponse struct {
	Status string `xml:"status,attr"`
}
type EventResponse struct {
	Status string `xml:"status,attr"`
}

// UpdateResponse is a response's <updatecheck>.
type UpdateResponse struct {
	Status   string    `xml:"status,attr"`
	URLs     *URLs     `xml:"urls"`
	Manifest *Manifest `xml:"manifest"`
}

// URLs lists the base URLs a package can be fetched from.
type URLs struct {
	URLs []URL `xml:"url"`
}

// URL is one <url codebase>.
type URL struct {
	CodeBase string `xml:"codebase,attr"`
}

// Manifest is <manifest version> with its packages and actions.
type Manifest struct {
	Version  string    `xml:"version,attr"`
	Packages []Package `xml:"packages>package"`
	Actions  []Action  `xml:"actions>action"`
}

// Package is one downloadable file. SHA1 is base64 (the classic "hash"). SHA256
// (hash_sha256) is kept as sent: Nebraska sends hex, go-omaha's server base64; FindUpdate
// reads both.
type Package struct {
	Name     string `xml:"name,attr"`
	SHA1     string `xml:"hash,attr,omitempty"`
	SHA256   string `xml:"hash_sha256,attr,omitempty"`
	Size     int64  `xml:"size,attr"`
	Required Bool   `xml:"required,attr"`
}

// Action is an <action>; update_engine reads the postinstall action's sha256 (base64).
type Action struct {
	Event                 string `xml:"event,attr"`
	DisplayVersion        string `xml:"DisplayVersion,attr,omitempty"`
	SHA256                string `xml:"sha256,attr,omitempty"`
	NeedsAdmin            Bool   `xml:"needsadmin,attr,omitempty"`
	IsDelta               Bool   `xml:"IsDelta,attr,omitempty"`
	DisablePayloadBackoff Bool   `xml:"DisablePayloadBackoff,attr,omitempty"`
}

// ErrMalformed wraps every parse failure.
var ErrMalformed = errors.New("malformed Omaha message")

func decode(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxMessageSize+1))
	if err != nil {
		return err
	}
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxMessageSize)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	// Omaha is plain UTF-8 XML: refuse other charsets instead of guessing.
	dec.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("charset %q not supported", label)
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// ParseRequest reads a request (the server side).
func ParseRequest(r io.Reader) (*Request, error) {
	var req Request
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Protocol != Protocol {
		return nil, fmt.Errorf("%w: request protocol=%q, want %s", ErrMalformed, req.Protocol, Protocol)
	}
	return &req, nil
}

// ParseResponse reads a response (the client side).
func ParseResponse(r io.Reader) (*Response, error) {
	var resp Response
	if err := decode(r, &resp); err != nil {
		return nil, err
	}
	if resp.Protocol != Protocol {
		return nil, fmt.Errorf("%w: response protocol=%q, want %s", ErrMalformed, resp.Protocol, Protocol)
	}
	return &resp, nil
}

// Marshal encodes a request or response with the XML declaration.
func Marshal(v any) ([]byte, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), b...), nil
}

// SameApp reports whether two app ids name the same application: Omaha's GUIDs are
// compared without case and with or without their braces, as Nebraska does.
func SameApp(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' {
			s = strings.TrimSpace(s[1 : len(s)-1])
		}
		return s
	}
	return strings.EqualFold(norm(a), norm(b))
}

// App returns the response's app with the given id.
func (r *Response) App(id string) (*AppResponse, error) {
	for _, a := range r.Apps {
		if SameApp(a.ID, id) {
			return a, nil
		}
	}
	return nil, fmt.Errorf("%w: no app %s in the response", ErrMalformed, id)
}

// Update is what an update check found, checked for the fields the engine needs.
type Update struct {
	Version string
	URL     string // full URL of the payload
	Name    string
	Size    int64
	SHA256  string // hex
}

// FindUpdate interprets an app's updatecheck: (nil, nil) for "no update". An error names
// the element and attribute that was missing or wrong.
func (a *AppResponse) FindUpdate() (*Update, error) {
	if a.Status != StatusOK {
		return nil, fmt.Errorf("omaha app %s: status %q", a.ID, a.Status)
	}
	uc := a.UpdateCheck
	if uc == nil {
		return nil, fmt.Errorf("%w: app %s has no <updatecheck>", ErrMalformed, a.ID)
	}
	switch uc.Status {
	case StatusNoUpdate:
		return nil, nil
	case StatusOK:
	default:
		return nil, fmt.Errorf("omaha app %s: updatecheck status %q", a.ID, uc.Status)
	}
	if uc.URLs == nil || len(uc.URLs.URLs) == 0 {
		return nil, fmt.Errorf("%w: updatecheck status=\"ok\" without <urls><url codebase>", ErrMalformed)
	}
	if uc.Manifest == nil {
		return nil, fmt.Errorf("%w: updatecheck status=\"ok\" without <manifest>", ErrMalformed)
	}
	m := uc.Manifest
	if m.Version == "" {
		return nil, fmt.Errorf("%w: manifest version=\"\"", ErrMalformed)
	}
	if len(m.Packages) == 0 {
		return nil, fmt.Errorf("%w: manifest %s has no <package>", ErrMalformed, m.Version)
	}
	pkg := m.Packages[0]
	if pkg.Name == "" {
		return nil, fmt.Errorf("%w: manifest %s: package name=\"\"", ErrMalformed, m.Version)
	}
	if pkg.Size <= 0 {
		return nil, fmt.Errorf("%w: package %q: size=\"%d\": not a positive byte count", ErrMalformed, pkg.Name, pkg.Size)
	}
	sum, err := packageSHA256(pkg, m.Actions)
	if err != nil {
		return nil, err
	}
	base := uc.URLs.URLs[0].CodeBase
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: url codebase=%q: not an http or https URL", ErrMalformed, base)
	}
	return &Update{Version: m.Version, Name: pkg.Name, Size: pkg.Size, SHA256: sum, URL: joinURL(base, pkg.Name)}, nil
}

// packageSHA256 is the package's SHA-256 in hex: its hash_sha256, or else the postinstall
// action's sha256 (update_engine's place for it, and where Nebraska puts it).
func packageSHA256(pkg Package, actions []Action) (string, error) {
	if pkg.SHA256 != "" {
		h, err := sha256Hex(pkg.SHA256)
		if err != nil {
			return "", fmt.Errorf("%w: package %q: hash_sha256=%q: %v", ErrMalformed, pkg.Name, pkg.SHA256, err)
		}
		return h, nil
	}
	for _, act := range actions {
		if act.Event == "postinstall" && act.SHA256 != "" {
			h, err := sha256Hex(act.SHA256)
			if err != nil {
				return "", fmt.Errorf("%w: postinstall action: sha256=%q: %v", ErrMalformed, act.SHA256, err)
			}
			return h, nil
		}
	}
	return "", fmt.Errorf("%w: package %q has no SHA-256 (hash_sha256, or sha256 on the postinstall action); its SHA-1 alone is not enough", ErrMalformed, pkg.Name)
}
