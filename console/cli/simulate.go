package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/console/sim"
	"github.com/cairn-os/cairn/console/updates"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// simulate runs a simulated fleet against a console until ctx ends or -duration passed,
// with its state on stderr every few seconds and a summary on stdout.
func (c *CLI) simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("simulate", stderr)
	consoleURL := fs.String("url", "http://"+DefaultListen, "the console's URL (its Omaha endpoint, "+updates.UpdatePath+", is added when the URL has no path)")
	appID := fs.String("app-id", updateconf.Defaults["APP_ID"], "the application the machines run")
	hosts := fs.Int("hosts", 100, "how many machines")
	group := fs.String("group", "stable", "the machines' group (its track)")
	version := fs.String("version", "1.0.0", "the version the machines run at start")
	failureRate := fs.Float64("failure-rate", 0, "the share of updates that fail at one of the install's steps (0 to 1)")
	rollbackRate := fs.Float64("rollback-rate", 0, "the share of installed updates whose new version never boots to good and rolls back (0 to 1)")
	checkInterval := fs.Duration("check-interval", updateconf.DefaultSchedule.Interval, "simulated time between a machine's update checks (a fifth of it as fuzz)")
	progressInterval := fs.Duration("progress-interval", 0, "simulated time between an update's progress reports (the engine's default when 0)")
	payloadSize := fs.Int64("payload-size", 0, "bytes a download is timed by (the offered package's size when 0)")
	speed := fs.Float64("speed", 1, "simulated seconds per second: 60 runs an hour of the fleet in a minute")
	seed := fs.Uint64("seed", 1, "the seed of every random draw: the same seed gives the same machines, timings and failures")
	duration := fs.Duration("duration", 0, "stop after this much real time (0: when interrupted)")
	every := fs.Duration("status-every", 5*time.Second, "real time between status lines on stderr")
	level := fs.String("log-level", "warn", "debug (every failed request), info, warn or error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("simulate: unexpected arguments %q", fs.Args())}
	}
	omahaURL, err := simulateURL(*consoleURL)
	if err != nil {
		return usageError{err}
	}
	log, err := newLog(stderr, *level)
	if err != nil {
		return usageError{err}
	}
	f, err := sim.New(sim.Config{URL: omahaURL, AppID: *appID, Hosts: *hosts, Group: *group, Version: *version,
		FailureRate: *failureRate, RollbackRate: *rollbackRate, CheckInterval: *checkInterval, ProgressInterval: *progressInterval,
		PayloadSize: *payloadSize, Speed: *speed, Seed: *seed, Log: log})
	if err != nil {
		return usageError{err}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	fmt.Fprintf(stderr, "simulating %d machines of %s in group %s against %s, %gx time\n", *hosts, *appID, *group, omahaURL, *speed)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	tick := time.NewTicker(max(*every, 100*time.Millisecond))
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
			fmt.Fprintln(stderr, statusLine(f.Stats()))
		}
	}
	fmt.Fprintln(stdout, statusLine(f.Stats()))
	counts := map[sim.Kind]int{}
	for _, r := range f.Records() {
		counts[r.Kind]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	fmt.Fprintf(stdout, "updates: %s\n", strings.Join(parts, ", "))
	return nil
}

// simulateURL is the Omaha endpoint of a console's URL.
func simulateURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("simulate: -url %q: want the console's http(s) URL", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = updates.UpdatePath
	}
	return u.String(), nil
}

// statusLine is a fleet's state in a line.
func statusLine(st sim.Stats) string {
	var versions []string
	for _, v := range slices.Sorted(maps.Keys(st.Versions)) {
		versions = append(versions, fmt.Sprintf("%s %d", v, st.Versions[v]))
	}
	return fmt.Sprintf("%s simulated: %s; updating %d, rebooting %d; %d checks, %d events, %d progress reports, %d failed requests; latency p50 %s, p99 %s",
		st.Elapsed.Round(time.Second), strings.Join(versions, ", "), st.Updating, st.Rebooting, st.Checks, st.Events, st.Reports, st.Errors, st.P50.Round(time.Microsecond), st.P99.Round(time.Microsecond))
}
