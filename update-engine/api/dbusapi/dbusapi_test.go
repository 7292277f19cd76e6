package dbusapi

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/api"
)

func TestParseStatus(t *testing.T) {
	full := api.Status{LastCheckedTime: 1795766400, Progress: 1, CurrentOperation: api.OpNeedReboot, NewVersion: "2.0.0", NewSize: 544287221}
	for _, tc := range []struct {
		name string
		body []any
		want api.Status
		ok   bool
	}{
		{"StatusBody", StatusBody(full), full, true},
		{"zero", StatusBody(api.Status{}), api.Status{}, true},
		{"wire values", []any{int64(0), 0.5, api.OpDownloading, "2.0.0", int64(1)},
			api.Status{Progress: 0.5, CurrentOperation: api.OpDownloading, NewVersion: "2.0.0", NewSize: 1}, true},
		{"empty", nil, api.Status{}, false},
		{"short", []any{int64(0), 0.5, api.OpIdle, "2.0.0"}, api.Status{}, false},
		{"long", append(StatusBody(full), "extra"), api.Status{}, false},
		{"size not an integer", []any{int64(0), 0.5, api.OpIdle, "2.0.0", "big"}, api.Status{}, false},
		{"progress not a double", []any{int64(0), "half", api.OpIdle, "", int64(0)}, api.Status{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatus(tc.body)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseStatus(%v) error %v, want ok=%v", tc.body, err, tc.ok)
			}
			if got != tc.want {
				t.Fatalf("ParseStatus(%v) = %+v, want %+v", tc.body, got, tc.want)
			}
		})
	}
}

// owner plays the engine: it owns Name and answers GetStatus with op.
type owner struct {
	mu sync.Mutex
	op string
}

func (o *owner) GetStatus() (int64, float64, string, string, int64, *dbus.Error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return 0, 0, o.op, "", 0, nil
}

// Watch: the status at start, the owner's signals but not a stranger's, and the status of
// a new owner when the engine restarts (whose signals count from then on, the old one's not).
func TestWatch(t *testing.T) {
	addr := testenv.PrivateBus(t)
	connect := func() *dbus.Conn {
		c, err := dbus.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	serve := func(op string) *dbus.Conn {
		c := connect()
		if err := c.Export(&owner{op: op}, Path, Interface); err != nil {
			t.Fatal(err)
		}
		if reply, err := c.RequestName(Name, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("request name: %v %v", reply, err)
		}
		return c
	}
	emit := func(c *dbus.Conn, op, version string) {
		if err := c.Emit(Path, StatusUpdateSignal, StatusBody(api.Status{CurrentOperation: op, NewVersion: version})...); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := serve(api.OpIdle)
	statuses, err := Watch(ctx, connect())
	if err != nil {
		t.Fatal(err)
	}
	quiet := func(why string) {
		t.Helper()
		select {
		case s := <-statuses:
			t.Fatalf("%s: %+v", why, s)
		case <-time.After(300 * time.Millisecond):
		}
	}
	next := func() api.Status {
		t.Helper()
		select {
		case s, ok := <-statuses:
			if !ok {
				t.Fatal("status channel closed")
			}
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no status")
		}
		return api.Status{}
	}
	if s := next(); s.CurrentOperation != api.OpIdle {
		t.Fatalf("first status %+v, want GetStatus's (idle)", s)
	}
	emit(connect(), api.OpNeedReboot, "6.6.6")
	quiet("took a stranger's signal")
	emit(first, api.OpDownloading, "2.0.0")
	if s := next(); s.CurrentOperation != api.OpDownloading || s.NewVersion != "2.0.0" {
		t.Fatalf("status %+v, want the owner's signal (downloading 2.0.0)", s)
	}

	// The engine restarts: the name is released, then owned by a new connection.
	if _, err := first.ReleaseName(Name); err != nil {
		t.Fatal(err)
	}
	second := serve(api.OpFinalizing)
	for s := next(); s.CurrentOperation != api.OpFinalizing; s = next() {
		if s.CurrentOperation == api.OpNeedReboot {
			t.Fatalf("took a signal from no owner: %+v", s)
		}
	}
	emit(first, api.OpNeedReboot, "6.6.6")
	quiet("took the old owner's signal")
	emit(second, api.OpNeedReboot, "3.0.0")
	if s := next(); s.CurrentOperation != api.OpNeedReboot || s.NewVersion != "3.0.0" {
		t.Fatalf("status %+v, want the new owner's signal (need reboot 3.0.0)", s)
	}
	cancel()
	for range statuses { // closed when ctx ends
	}
}
