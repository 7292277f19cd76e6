package web

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

func TestStateOf(t *testing.T) {
	admin := rollout.DefaultPolicy()
	admin.Approval = rollout.ApprovalAdmin
	for _, tc := range []struct {
		name   string
		g      store.Group
		s      store.GroupSummary
		key    string
		detail string
	}{
		{"halted by the rollout", store.Group{Version: "2.0.0", Paused: true, PausedBy: store.ActorRollout, PausedReason: "2 of 2 attempts failed"},
			store.GroupSummary{Instances: 5}, "halted", "2 of 2 attempts failed"},
		{"paused by an admin", store.Group{Version: "2.0.0", Paused: true, PausedBy: "alice", PausedReason: "bad batch"},
			store.GroupSummary{Instances: 5}, "paused", "paused by alice: bad batch"},
		{"paused without a reason", store.Group{Version: "2.0.0", Paused: true, PausedBy: "alice", PausedReason: "paused by alice"},
			store.GroupSummary{Instances: 5}, "paused", "paused by alice"},
		{"no package", store.Group{Track: "stable"}, store.GroupSummary{Instances: 5}, "nopackage", "its channel has no package to offer"},
		{"no machines", store.Group{Version: "2.0.0", Track: "beta"}, store.GroupSummary{}, "idle", `no machine has checked in on track beta`},
		{"all on the target", store.Group{Version: "2.0.0"}, store.GroupSummary{Instances: 3, OnTarget: 3}, "done", "all 3 on 2.0.0"},
		{"awaiting approval", store.Group{Version: "2.0.0", Policy: admin, ApprovedVersion: "1.0.0"}, store.GroupSummary{Instances: 3, OnTarget: 1},
			"approval", "2.0.0 waits for an admin's approval"},
		{"approved", store.Group{Version: "2.0.0", Policy: admin, ApprovedVersion: "2.0.0"}, store.GroupSummary{Instances: 3, OnTarget: 1},
			"rolling", "1 of 3 on 2.0.0"},
		{"rolling out", store.Group{Version: "2.0.0"}, store.GroupSummary{Instances: 10, OnTarget: 4, InFlight: 2}, "rolling", "4 of 10 on 2.0.0, 2 updating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := StateOf(&tc.g, &tc.s)
			if st.Key != tc.key || st.Detail != tc.detail {
				t.Errorf("got %s %q, want %s %q", st.Key, st.Detail, tc.key, tc.detail)
			}
		})
	}
}

func TestPolicyForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		form url.Values
		want map[string]any
		err  string
	}{
		{"nothing", url.Values{}, map[string]any{}, ""},
		{"every field", url.Values{"approval": {"admin"}, "max_in_flight": {" 5 "}, "canaries": {"1"}, "max_updates_per_period": {""},
			"period": {"2h"}, "update_timeout": {""}, "halt_errors": {"3"}, "halt_percent": {"12.5%"}, "halt_min_sample": {"10"},
			"window_start": {"Thu 04:00"}, "window_length": {"2h"}, "timezone": {"Europe/Berlin"}},
			map[string]any{"approval": "admin", "max_in_flight": 5, "canaries": 1, "max_updates_per_period": 0, "period": "2h",
				"halt_errors": 3, "halt_percent": 12.5, "halt_min_sample": 10, "window_start": "Thu 04:00", "window_length": "2h",
				"timezone": "Europe/Berlin"}, ""},
		{"an empty window clears it", url.Values{"window_start": {""}, "window_length": {""}}, map[string]any{"window_start": "", "window_length": ""}, ""},
		{"not a number", url.Values{"max_in_flight": {"lots"}}, nil, `max in flight "lots": want a whole number`},
		{"negative", url.Values{"canaries": {"-1"}}, nil, `canaries "-1": want a whole number`},
		{"not a share", url.Values{"halt_percent": {"half"}}, nil, `halt at a share of failures "half": want a percentage`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PolicyForm(tc.form)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestWords(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ got, want string }{
		{Ago(time.Time{}, now), "never"},
		{Ago(now.Add(-2*time.Second), now), "just now"},
		{Ago(now.Add(-42*time.Second), now), "42 s ago"},
		{Ago(now.Add(-5*time.Minute), now), "5 min ago"},
		{Ago(now.Add(-3*time.Hour), now), "3 h ago"},
		{Ago(now.Add(-72*time.Hour), now), "3 days ago"},
		{Ago(now.Add(90*time.Second), now), "in 1 min"},
		{Duration(time.Hour), "1 h"},
		{Duration(90 * time.Minute), "1 h 30 min"},
		{Duration(45 * time.Second), "45 s"},
		{Duration(72 * time.Hour), "3 days"},
		{GoDuration(time.Hour), "1h"},
		{GoDuration(30 * time.Minute), "30m"},
		{GoDuration(90 * time.Minute), "1h30m"},
		{GoDuration(45 * time.Second), "45s"},
		{OperationLabel("UPDATE_STATUS_DOWNLOADING"), "Downloading"},
		{OperationLabel("UPDATE_STATUS_UPDATED_NEED_REBOOT"), "Updated, needs a reboot"},
		{StepText("UPDATE_STATUS_DOWNLOADING", "download"), "Downloading"},
		{StepText("UPDATE_STATUS_FINALIZING", "write-usr"), "Finalizing · write-usr"},
		{StepText("UPDATE_STATUS_UPDATED_NEED_REBOOT", "reboot"), "Updated, needs a reboot"},
		{StepText("", "verify"), "verify"},
		{Short("0123456789abcdef0123456789abcdef"), "01234567…"},
		{Short("m1"), "m1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestCharts(t *testing.T) {
	b := []store.Breakdown{{Key: "3.0.0", N: 1}, {Key: "2.0.0", N: 3}}
	colors := VersionColors(b)
	if colors["3.0.0"] != VersionColor(0) || colors["2.0.0"] != VersionColor(1) {
		t.Fatalf("colours %v", colors)
	}
	c := VersionChart("Versions", b, colors, "3.0.0", func(k string) string { return "/i?version=" + k })
	if c.Total != 4 || len(c.Slices) != 2 || c.Pct(c.Slices[1]) != 75 || c.Slices[0].URL != "/i?version=3.0.0" {
		t.Fatalf("chart %+v", c)
	}
	d := string(Donut(c))
	for _, w := range []string{`aria-label="Versions: 3.0.0 1, 2.0.0 3"`, `stroke="` + VersionColor(0) + `"`, `<title>2.0.0: 3 (75%)</title>`, `>4</text>`} {
		if !strings.Contains(d, w) {
			t.Errorf("donut: no %q in %s", w, d)
		}
	}
	st := StatusChart("Status", []store.Breakdown{{Key: "error", N: 1}, {Key: "complete", N: 2}, {Key: "downloading", N: 1}}, func(string) string { return "" })
	var labels []string
	for _, s := range st.Slices {
		labels = append(labels, s.Label)
	}
	if strings.Join(labels, ",") != "Downloading,Complete,Error" {
		t.Errorf("statuses in the order of an update: %v", labels)
	}
	if bar := string(Bar(st)); !strings.Contains(bar, `width="25.000"`) || !strings.Contains(bar, `fill="#1a7f37"`) {
		t.Errorf("bar %s", bar)
	}
	empty := Chart{Title: "none"}
	if !strings.Contains(string(Donut(empty)), "no machines") {
		t.Error("an empty donut does not say so")
	}
}
