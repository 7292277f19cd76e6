package omaha

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Client posts requests to an Omaha server.
type Client struct {
	URL  string       // e.g. https://public.update.example/v1/update/
	HTTP *http.Client // nil means http.DefaultClient
}

// Do sends req and parses the answer.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	body, err := Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("omaha server %s: %w", c.URL, err)
	}
	hr.Header.Set("Content-Type", "text/xml")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("omaha server %s: %w", c.URL, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, &HTTPError{URL: c.URL, Status: res.StatusCode}
	}
	resp, err := ParseResponse(res.Body)
	if err != nil {
		return nil, fmt.Errorf("omaha server %s: %w", c.URL, err)
	}
	return resp, nil
}

// HTTPError is a non-200 answer from the server.
type HTTPError struct {
	URL    string
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("omaha server %s: HTTP %d", e.URL, e.Status)
}

func joinURL(base, name string) string {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + url.PathEscape(name)
}
