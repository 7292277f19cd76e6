package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/rollout"
)

func TestSimulateURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/update/"},
		{"https://updates.example.com/", "https://updates.example.com/v1/update/"},
		{"http://127.0.0.1:8000/v1/update/", "http://127.0.0.1:8000/v1/update/"},
		{"http://proxy/console/v1/update/", "http://proxy/console/v1/update/"},
		{"127.0.0.1:8000", ""},
		{"ftp://example.com/", ""},
		{"http://", ""},
	} {
		got, err := simulateURL(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("simulateURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// A fleet of twenty simulated for two seconds at 1800× (an hour) updates at a console.
func TestSimulate(t *testing.T) {
	c := consoletest.Start(t, consoletest.Options{})
	c.Group("stable", rollout.DefaultPolicy())
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	var out, errb bytes.Buffer
	code := (&CLI{}).Run(context.Background(), []string{"simulate", "-url", c.URL, "-app-id", consoletest.AppID, "-hosts", "20",
		"-check-interval", "10m", "-speed", "1800", "-payload-size", "100000000", "-duration", "2s", "-status-every", "500ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("simulate: %d\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "simulating 20 machines") || strings.Count(errb.String(), " simulated: ") < 2 {
		t.Errorf("stderr:\n%s", errb.String())
	}
	if !strings.Contains(out.String(), "2.0.0 ") || !strings.Contains(out.String(), "complete ") || !strings.Contains(out.String(), " 0 failed requests") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if n := len(c.Events()); n == 0 {
		t.Errorf("the console recorded no events")
	}
	t.Logf("%s%s", errb.String(), out.String())

	if code := (&CLI{}).Run(context.Background(), []string{"simulate", "-url", c.URL, "-failure-rate", "2"}, &out, &errb); code != 2 {
		t.Errorf("a failure rate of 2: exit %d, want 2", code)
	}
}
