package locksmith

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// FleetLock is a client of Zincati's FleetLock protocol: POST /v1/pre-reboot to take a
// reboot slot, POST /v1/steady-state to give it back after the reboot.
type FleetLock struct {
	URL   string // base URL of the server
	Group string // "default" if empty
	ID    string
	HTTP  *http.Client
}

type fleetLockBody struct {
	ClientParams struct {
		ID    string `json:"id"`
		Group string `json:"group"`
	} `json:"client_params"`
}

// FleetLockError is a refusal from the server (kind and value as the protocol sends them).
type FleetLockError struct {
	Status int
	Kind   string `json:"kind"`
	Value  string `json:"value"`
}

func (e *FleetLockError) Error() string {
	return fmt.Sprintf("fleetlock: HTTP %d: %s: %s", e.Status, e.Kind, e.Value)
}

func (f *FleetLock) post(ctx context.Context, path string) error {
	var body fleetLockBody
	body.ClientParams.ID = f.ID
	body.ClientParams.Group = f.Group
	if body.ClientParams.Group == "" {
		body.ClientParams.Group = "default"
	}
	b, _ := json.Marshal(body)
	u := strings.TrimSuffix(f.URL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("fleet-lock-protocol", "true")
	req.Header.Set("Content-Type", "application/json")
	hc := f.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleetlock %s: %w", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		return nil
	}
	fe := &FleetLockError{Status: res.StatusCode}
	// Kind and value are detail: a server, or a proxy in front of it, that sends no JSON
	// body has still refused, with its status.
	_ = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(fe)
	return fe
}

// Lock asks for a reboot slot.
func (f *FleetLock) Lock(ctx context.Context) error { return f.post(ctx, "/v1/pre-reboot") }

// Unlock reports the machine back in steady state, releasing its slot.
func (f *FleetLock) Unlock(ctx context.Context) error { return f.post(ctx, "/v1/steady-state") }
