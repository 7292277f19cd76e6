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

// EventType is an <event eventtype>, numbered as in update_engine.
type EventType int

const (
	EventTypeUnknown                EventType = 0
	EventTypeDownloadComplete       EventType = 1
	EventTypeInstallComplete        EventType = 2
	EventTypeUpdateComplete         EventType = 3
	EventTypeUpdateDownloadStarted  EventType = 13
	EventTypeUpdateDownloadFinished EventType = 14
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

// ErrorCode is an <event errorcode>. Codes below 100 follow update_engine's action exit
// codes, so dashboards built for Container Linux read them the same way; codes from 1000 up
// are Cairn's own.
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

	// ErrorCodeRollback: the machine booted back into the previous version after an update
	// (the new slot ran out of boot tries without being marked good).
	ErrorCodeRollback ErrorCode = 1000
	// ErrorCodeWrongBoard: the payload is for another board.
	ErrorCodeWrongBoard ErrorCode = 1001
	// ErrorCodeNotNewer: the payload's version is not newer than the running one.
	ErrorCodeNotNewer ErrorCode = 1002
	// ErrorCodeSetBootError: the boot entry of the new slot could not be written.
	ErrorCodeSetBootError ErrorCode = 1003
)

// Request is an Omaha <request>.
type Request struct {
	XMLName        xml.Name      `xml:"request"`
	Protocol       string        `xml:"protocol,attr"`
	Version        string        `xml:"version,attr,omitempty"`
	UpdaterVersion string        `xml:"updaterversion,attr,omitempty"`
	InstallSource  string        `xml:"installsource,attr,omitempty"`
	IsMachine      int           `xml:"ismachine,attr,omitempty"`
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

// AppRequest is a request's <app>. Track is the update group (GROUP in update.conf).
type AppRequest struct {
	ID           string          `xml:"appid,attr"`
	Version      string          `xml:"version,attr,omitempty"`
	Track        string          `xml:"track,attr,omitempty"`
	BootID       string          `xml:"bootid,attr,omitempty"`
	MachineID    string          `xml:"machineid,attr,omitempty"`
	OEM          string          `xml:"oem,attr,omitempty"`
	OEMVersion   string          `xml:"oemversion,attr,omitempty"`
	AlephVersion string          `xml:"alephversion,attr,omitempty"`
	Board        string          `xml:"board,attr,omitempty"`
	Lang         string          `xml:"lang,attr,omitempty"`
	DeltaOK      bool            `xml:"delta_okay,attr,omitempty"`
	Ping         *PingRequest    `xml:"ping"`
	UpdateCheck  *UpdateCheck    `xml:"updatecheck"`
	Events       []*EventRequest `xml:"event"`
}

// PingRequest is <ping active="1">.
type PingRequest struct {
	Active int `xml:"active,attr,omitempty"`
}

// UpdateCheck is the request's <updatecheck>.
type UpdateCheck struct {
	TargetVersionPrefix string `xml:"targetversionprefix,attr,omitempty"`
}

// EventRequest is a request's <event>.
type EventRequest struct {
	Type            EventType   `xml:"eventtype,attr"`
	Result          EventResult `xml:"eventresult,attr"`
	ErrorCode       ErrorCode   `xml:"errorcode,attr,omitempty"`
	PreviousVersion string      `xml:"previousversion,attr,omitempty"`
}

// Response is an Omaha <response>.
type Response struct {
	XMLName  xml.Name       `xml:"response"`
	Protocol string         `xml:"protocol,attr"`
	Server   string         `xml:"server,attr,omitempty"`
	DayStart *DayStart      `xml:"daystart"`
	Apps     []*AppResponse `xml:"app"`
}

// DayStart is <daystart elapsed_seconds>.
type DayStart struct {
	ElapsedSeconds int64 `xml:"elapsed_seconds,attr"`
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

// Package is one downloadable file. SHA1 is base64 (the classic "hash"); SHA256 is hex, as
// Nebraska sends it in hash_sha256.
type Package struct {
	Name     string `xml:"name,attr"`
	SHA1     string `xml:"hash,attr,omitempty"`
	SHA256   string `xml:"hash_sha256,attr,omitempty"`
	Size     int64  `xml:"size,attr"`
	Required bool   `xml:"required,attr"`
}

// Action is an <action>; update_engine reads the postinstall action's sha256 (base64).
type Action struct {
	Event                 string `xml:"event,attr"`
	DisplayVersion        string `xml:"DisplayVersion,attr,omitempty"`
	SHA256                string `xml:"sha256,attr,omitempty"`
	NeedsAdmin            bool   `xml:"needsadmin,attr,omitempty"`
	IsDelta               bool   `xml:"IsDelta,attr,omitempty"`
	DisablePayloadBackoff bool   `xml:"DisablePayloadBackoff,attr,omitempty"`
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
		return nil, fmt.Errorf("%w: protocol %q, want %s", ErrMalformed, req.Protocol, Protocol)
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
		return nil, fmt.Errorf("%w: protocol %q, want %s", ErrMalformed, resp.Protocol, Protocol)
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

// App returns the response's app with the given id.
func (r *Response) App(id string) (*AppResponse, error) {
	for _, a := range r.Apps {
		if a.ID == id {
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

// FindUpdate interprets an app's updatecheck: (nil, nil) for "no update".
func (a *AppResponse) FindUpdate() (*Update, error) {
	if a.Status != StatusOK {
		return nil, fmt.Errorf("omaha app %s: status %q", a.ID, a.Status)
	}
	uc := a.UpdateCheck
	if uc == nil {
		return nil, fmt.Errorf("%w: app %s has no updatecheck", ErrMalformed, a.ID)
	}
	switch uc.Status {
	case StatusNoUpdate:
		return nil, nil
	case StatusOK:
	default:
		return nil, fmt.Errorf("omaha app %s: updatecheck status %q", a.ID, uc.Status)
	}
	if uc.Manifest == nil || uc.URLs == nil || len(uc.URLs.URLs) == 0 || len(uc.Manifest.Packages) == 0 {
		return nil, fmt.Errorf("%w: updatecheck ok without urls, manifest or package", ErrMalformed)
	}
	pkg := uc.Manifest.Packages[0]
	u := &Update{Version: uc.Manifest.Version, Name: pkg.Name, Size: pkg.Size, SHA256: pkg.SHA256}
	if u.SHA256 == "" {
		for _, act := range uc.Manifest.Actions {
			if act.Event == "postinstall" && act.SHA256 != "" {
				h, err := base64ToHex(act.SHA256)
				if err != nil {
					return nil, fmt.Errorf("%w: postinstall sha256: %v", ErrMalformed, err)
				}
				u.SHA256 = h
			}
		}
	}
	if u.Version == "" || pkg.Name == "" || u.Size <= 0 || len(u.SHA256) != 64 {
		return nil, fmt.Errorf("%w: update without version, package name, size or sha256", ErrMalformed)
	}
	u.URL = joinURL(uc.URLs.URLs[0].CodeBase, pkg.Name)
	return u, nil
}
