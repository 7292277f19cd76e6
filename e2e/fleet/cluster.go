package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/locksmith"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// HelloServerUnit is host 1's pod on rkt's network named network (flannel's), answering
// HTTP on 8080. It starts once flanneld has written its subnet (after kubeadm join, for a
// Kubernetes node's flanneld: longer than a unit's start timeout under TCG), and is
// restarted for as long as it fails.
func HelloServerUnit(network string) string {
	return `[Unit]
Description=The example pod, serving on the overlay
After=flanneld.service
Wants=flanneld.service
StartLimitIntervalSec=0

[Service]
ExecStartPre=/bin/sh -c 'until [ -s /run/flannel/subnet.env ]; do sleep 1; done'
TimeoutStartSec=infinity
ExecStart=/usr/bin/rkt run --net=` + network + ` --insecure-options=image /usr/share/cairn/examples/hello.aci --exec=/hello -- serve :8080
Delegate=yes
KillMode=mixed
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`
}

// Cluster is two Cairn hosts on one cable, with the fleet's services: the demo, and the
// scenarios of TestCluster.
type Cluster struct {
	Fleet   *Fleet
	Hosts   [2]*Host
	Out     io.Writer // what happens, step by step
	Network string    // rkt's network on flannel, which the pods of Overlay join
	ids     map[*Host]string
}

// NewCluster makes the fleet and the two hosts (not booted yet), with state under dir.
// Configs are the hosts' first-boot configs, written to dir/cairn-N.ign as well.
func NewCluster(ctx context.Context, dir string, im *Images, out io.Writer) (*Cluster, error) {
	if out == nil {
		out = io.Discard
	}
	f, err := StartFleet(ctx, dir+"/fleet", im)
	if err != nil {
		return nil, err
	}
	c := ClusterOf(f, [2]*Host{}, out)
	if err := f.SetFlannelConfig(ctx); err != nil {
		f.Close()
		return nil, err
	}
	links, err := ClusterLinks()
	if err != nil {
		f.Close()
		return nil, err
	}
	for i := range c.Hosts {
		cfg := f.ClusterConfig(i + 1)
		if i == 0 {
			cfg.Unit("hello-server.service", HelloServerUnit(c.Network), true)
		}
		if c.Hosts[i], err = f.NewHost(fmt.Sprintf("cairn-%d", i+1), fmt.Sprintf("%s/cairn-%d", dir, i+1), cfg, links[i]); err != nil {
			f.Close()
			return nil, err
		}
		c.Hosts[i].Notes = c.Out
	}
	return c, nil
}

// ClusterOf is a Cluster of hosts made elsewhere (Kubernetes nodes), for its scenarios: its
// pods join rkt's network "flannel" unless Network is set.
func ClusterOf(f *Fleet, hosts [2]*Host, out io.Writer) *Cluster {
	if out == nil {
		out = io.Discard
	}
	return &Cluster{Fleet: f, Hosts: hosts, Out: out, Network: "flannel", ids: map[*Host]string{}}
}

// Close stops the machines and the fleet.
func (c *Cluster) Close() {
	for _, h := range c.Hosts {
		if h != nil {
			h.Stop()
		}
	}
	c.Fleet.Close()
}

func (c *Cluster) say(format string, args ...any) { fmt.Fprintf(c.Out, format+"\n", args...) }

// Boot boots both hosts at once and waits for both to reach multi-user.target on version
// from slot.
func (c *Cluster) Boot(ctx context.Context, version, slot string) error {
	for _, h := range c.Hosts {
		if err := h.Boot(ctx); err != nil {
			return err
		}
	}
	for _, h := range c.Hosts {
		_, took, err := h.WaitFor(ctx, BootMarker(version, slot))
		if err != nil {
			return err
		}
		c.say("%s: up on Cairn %s, slot %s, in %v", h.Name, version, slot, took.Round(100*time.Millisecond))
	}
	return nil
}

// MachineID is h's /etc/machine-id: its instance id in the console and in the reboot
// semaphore.
func (c *Cluster) MachineID(ctx context.Context, h *Host) (string, error) {
	if id, ok := c.ids[h]; ok {
		return id, nil
	}
	out, err := h.Run(ctx, "cat /etc/machine-id")
	if err != nil {
		return "", err
	}
	c.ids[h] = strings.TrimSpace(out)
	return c.ids[h], nil
}

// OverlayResult is what scenario 3 saw.
type OverlayResult struct {
	Subnets [2]string // FLANNEL_SUBNET of each host
	PodIP   string    // the server pod on host 1
	Answer  string    // what the pod on host 2 got from it
	Took    time.Duration
}

// podIP finds a pod's address on rkt's network named network in `rkt list`.
func podIP(network string) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(network) + `:ip4=([0-9.]+)`)
}

// Overlay waits for flanneld's subnets on both hosts and for host 1's server pod, then runs a
// pod on host 2 that fetches from it across the overlay.
func (c *Cluster) Overlay(ctx context.Context) (*OverlayResult, error) {
	start := time.Now()
	r := &OverlayResult{}
	for i, h := range c.Hosts {
		out, err := Eventually(ctx, h, "cat /run/flannel/subnet.env", func(s string) bool { return strings.Contains(s, "FLANNEL_SUBNET=") })
		if err != nil {
			return nil, err
		}
		for l := range strings.SplitSeq(out, "\n") {
			if v, ok := strings.CutPrefix(l, "FLANNEL_SUBNET="); ok {
				r.Subnets[i] = v
			}
		}
		c.say("%s: flanneld leased %s", h.Name, r.Subnets[i])
	}
	h1, h2 := c.Hosts[0], c.Hosts[1]
	ip := podIP(c.Network)
	out, err := Eventually(ctx, h1, "rkt list --no-legend", func(s string) bool { return ip.MatchString(s) && strings.Contains(s, "running") })
	if err != nil {
		return nil, err
	}
	r.PodIP = ip.FindStringSubmatch(out)[1]
	c.say("%s: the hello-server pod (a systemd unit) serves on %s:8080", h1.Name, r.PodIP)
	cmd := "rkt run --net=" + c.Network + " --insecure-options=image /usr/share/cairn/examples/hello.aci --exec=/hello -- get http://" + r.PodIP + ":8080/ 2>/dev/null"
	c.say("%s: $ %s", h2.Name, cmd)
	if r.Answer, err = h2.Run(ctx, cmd); err != nil {
		return r, err
	}
	r.Answer = strings.TrimSpace(r.Answer)
	c.say("%s: %s", h2.Name, r.Answer)
	r.Took = time.Since(start)
	return r, nil
}

// Reboot is one host's reboot into an update: when its VM went down and when it was back.
type Reboot struct {
	Host     *Host
	Down, Up time.Time
	Released time.Time // when its reboot lock was seen released after Down (zero: never)
	HeldAt   []string  // the semaphore's holders when it went down
}

// UpdateResult is what scenarios 4 and 6 saw.
type UpdateResult struct {
	Offered    time.Time
	Reboots    []Reboot // in the order the hosts went down
	MaxHolders int      // the most holders the reboot semaphore ever had
}

// Update offers the new release, asks both hosts to check, and follows them through their
// coordinated reboots until both run version New from slot B.
func (c *Cluster) Update(ctx context.Context, payloadPath string) (*UpdateResult, error) {
	for _, h := range c.Hosts {
		if _, err := c.MachineID(ctx, h); err != nil {
			return nil, err
		}
	}
	var sem semaphoreLog
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	watching := make(chan struct{})
	go sem.watch(wctx, c.Fleet.Client, watching)
	<-watching
	if err := c.Fleet.Offer(payloadPath, New); err != nil {
		return nil, err
	}
	r := &UpdateResult{Offered: time.Now()}
	c.say("omaha: offering Cairn %s; both hosts check now (update_engine_client -check_for_update)", New)
	for _, h := range c.Hosts {
		if _, err := h.Run(ctx, "update_engine_client -check_for_update"); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(c.Hosts))
	for _, h := range c.Hosts {
		wg.Go(func() {
			c.Follow(wctx, h, r.Offered)
			if err := h.WaitExit(ctx); err != nil {
				errs <- err
				return
			}
			rb := Reboot{Host: h, Down: time.Now()}
			c.say("%s: rebooting into the update (+%v)", h.Name, rb.Down.Sub(r.Offered).Round(time.Second))
			if err := h.Boot(ctx); err != nil {
				errs <- err
				return
			}
			if _, _, err := h.WaitFor(ctx, BootMarker(New, "B")); err != nil {
				errs <- err
				return
			}
			// The update's UKI names no partition: early boot takes the slot whose entry
			// systemd-boot says it booted (LoaderEntrySelected).
			if want := "cairn-init: the loader booted slot B's entry"; !strings.Contains(h.VM().Console(), want) {
				errs <- fmt.Errorf("%s: early boot did not say %q:\n%s", h.Name, want, initLines(h.VM().Console()))
				return
			}
			rb.Up = time.Now()
			c.say("%s: up on Cairn %s from slot B (+%v)", h.Name, New, rb.Up.Sub(r.Offered).Round(time.Second))
			mu.Lock()
			r.Reboots = append(r.Reboots, rb)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return r, err
	}
	// The lock is released by locksmithd once the machine is up: give it the time to.
	deadline := time.Now().Add(2 * time.Minute)
	for i := range r.Reboots {
		rb := &r.Reboots[i]
		id := c.ids[rb.Host]
		rb.HeldAt = sem.holdersAt(rb.Down)
		for {
			if t, ok := sem.releasedAfter(id, rb.Down); ok {
				rb.Released = t
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
	}
	slices.SortFunc(r.Reboots, func(a, b Reboot) int { return a.Down.Compare(b.Down) })
	r.MaxHolders = sem.maxHolders()
	return r, nil
}

// Follow says h's update progress and asks it to check again while the console's rollout
// holds it back from the update offered at offered, until ctx ends or h's boot does. It
// returns once it knows h's machine ID (the console's instance ID), the rest going on in the
// background. Calls for different hosts run at once only once each host's ID is known.
func (c *Cluster) Follow(ctx context.Context, h *Host, offered time.Time) {
	if _, err := c.MachineID(ctx, h); err != nil {
		c.say("%s: its machine ID: %v (its progress goes unsaid)", h.Name, err)
		return
	}
	go c.followProgress(ctx, h)
	go c.recheckWhileHeld(ctx, h, offered)
}

// HeldBack says whether the console's rollout holds a machine back from the version
// offered at offered, and why: it checked since, is not updating and is not running it.
// Such a machine checks again only at its schedule (45 minutes), so the harness asks it to
// once the rollout may let it go.
func HeldBack(in *store.Instance, version string, offered time.Time) (bool, string) {
	if in == nil || in.UpdateInProgress || in.Version == version || in.LastCheckAt.Before(offered) {
		return false, ""
	}
	switch in.Hold {
	case rollout.ReasonNone, rollout.ReasonUpToDate, rollout.ReasonNoGroup, rollout.ReasonNoPackage:
		return false, ""
	}
	return true, in.HoldReason
}

// recheckWhileHeld asks h to check for an update again every 15 s while the rollout holds it
// back (a canary not yet complete, max in flight), and says why it waits.
func (c *Cluster) recheckWhileHeld(ctx context.Context, h *Host, offered time.Time) {
	said, vm := "", h.VM()
	for ctx.Err() == nil && !vm.Exited() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(15 * time.Second):
		}
		in, err := c.Fleet.Console.Store.Instance(ctx, c.Fleet.App.ID, c.ids[h])
		if err != nil {
			continue
		}
		held, why := HeldBack(in, New, offered)
		if !held {
			if in.UpdateInProgress {
				return
			}
			continue
		}
		if why != said {
			said = why
			c.say("%s: the console's rollout holds it back: %s", h.Name, why)
		}
		// Only an idle engine checks: one that is updating answers for the update it runs.
		if out, err := h.Run(ctx, "update_engine_client -status"); err != nil || !strings.Contains(out, "CURRENT_OP=UPDATE_STATUS_IDLE") {
			continue
		}
		h.Run(ctx, "update_engine_client -check_for_update") //nolint:errcheck // the next round asks again
	}
}

// followProgress prints h's update progress (update_engine_client -status) until the boot it
// started on ends.
func (c *Cluster) followProgress(ctx context.Context, h *Host) {
	last, vm := "", h.VM()
	for ctx.Err() == nil && !vm.Exited() {
		out, err := h.Run(ctx, "update_engine_client -status")
		if err != nil || vm.Exited() { // an answer from the next boot is not this update's
			return
		}
		var op, prog string
		for l := range strings.SplitSeq(out, "\n") {
			if v, ok := strings.CutPrefix(l, "CURRENT_OP="); ok {
				op = v
			}
			if v, ok := strings.CutPrefix(l, "PROGRESS="); ok {
				prog = v
			}
		}
		if line := progressLine(op, prog); op != "" && line != last {
			last = line
			c.say("%s: update_engine %s", h.Name, line)
		}
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
}

// progressLine is update_engine's state and its progress in quarters ("DOWNLOADING 50%"),
// so that a line is said when the state changes or its progress passes a quarter.
func progressLine(op, prog string) string {
	op = strings.TrimPrefix(op, "UPDATE_STATUS_")
	p, err := strconv.ParseFloat(prog, 64)
	if err != nil || p <= 0 {
		return op
	}
	return fmt.Sprintf("%s %d%%", op, int(p*4)*25)
}

// Slots is h's A/B slots as its update engine sees them.
func Slots(ctx context.Context, h *Host) (*slots.Status, error) {
	out, err := h.Run(ctx, "update_engine_client -slots -format json")
	if err != nil {
		return nil, err
	}
	var st slots.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("%s: slots: %w: %s", h.Name, err, out)
	}
	return &st, nil
}

// WaitGood waits until h's active slot is slot and marked good (systemd-bless-boot, once
// boot-complete.target is reached).
func WaitGood(ctx context.Context, h *Host, slot disklayout.Slot) (*slots.Status, error) {
	var st slots.Status
	_, err := Eventually(ctx, h, "update_engine_client -slots -format json", func(s string) bool {
		return json.Unmarshal([]byte(s), &st) == nil && st.Active == slot && st.Slot(slot).State == slots.StateGood
	})
	return &st, err
}

// WaitEvent waits for an event of h's at the console that tells kind (complete: the
// new version running and blessed good; error: with code), from version unless empty.
func (c *Cluster) WaitEvent(ctx context.Context, h *Host, version string, kind omaha.Kind, code omaha.ErrorCode) error {
	id := c.ids[h]
	for {
		evs, err := c.Fleet.Events()
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.InstanceID == id && e.Kind() == kind && e.ErrorCode == code && (version == "" || e.Version == version) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never reported %s (code %d) from %q: %w", h.Name, kind, code, version, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// RollbackResult is what scenario 5 saw.
type RollbackResult struct {
	FailedBoots int
	Took        time.Duration
}

// Rollback offers the bad release to h (running goodVersion from goodSlot) and follows it
// through the failing boots of the bad slot until it is back on goodVersion from goodSlot. The other host should
// be stopped: h then boots with both cores.
func (c *Cluster) Rollback(ctx context.Context, h *Host, badPayload, goodVersion, goodSlot string) (_ *RollbackResult, err error) {
	if _, err := c.MachineID(ctx, h); err != nil {
		return nil, err
	}
	if err := c.Fleet.Offer(badPayload, Bad); err != nil {
		return nil, err
	}
	// A bad release left on offer would be installed by every later check.
	defer func() {
		if werr := c.Fleet.Withdraw(Bad); werr != nil {
			err = errors.Join(err, fmt.Errorf("withdraw Cairn %s: %w", Bad, werr))
		}
	}()
	start := time.Now()
	r := &RollbackResult{}
	h.mu.Lock()
	h.Machine.CPUs = 2 // from its next boot on
	h.mu.Unlock()
	c.say("omaha: offering Cairn %s, whose /usr does not match its dm-verity root hash", Bad)
	if _, err := h.Run(ctx, "update_engine_client -check_for_update"); err != nil {
		return nil, err
	}
	boots := h.Boots()
	first := true
	for {
		if err := h.WaitExit(ctx); err != nil {
			return r, err
		}
		if first {
			first = false
			entries, err := h.ESPEntries()
			if err != nil {
				return r, err
			}
			c.say("%s: installed %s and restarted; ESP: %s", h.Name, Bad, strings.Join(entries, " "))
		}
		if h.Boots()-boots > 6 {
			return r, fmt.Errorf("%s: not back on slot %s after %d boots", h.Name, goodSlot, h.Boots()-boots)
		}
		if err := h.Boot(ctx); err != nil {
			return r, err
		}
		// A failed boot either says so (cairn-init cannot open /usr) or just restarts: dm-verity
		// restarts the machine when a block it reads is corrupt.
		got, _, err := h.WaitFor(ctx, BootMarker(goodVersion, goodSlot), Marker+" version="+Bad)
		if errors.Is(err, qemu.ErrExited) {
			r.FailedBoots++
			why := "restarted"
			if c := h.VM().Console(); strings.Contains(c, "BOOT FAILED") || strings.Contains(c, "is corrupted") {
				why = "dm-verity refused its /usr"
			}
			entries, err := h.ESPEntries()
			if err != nil {
				return r, err
			}
			c.say("%s: boot %d of Cairn %s failed (%s); the machine restarts; ESP: %s", h.Name, r.FailedBoots, Bad, why, strings.Join(entries, " "))
			continue
		}
		if err != nil {
			return r, err
		}
		switch got {
		case BootMarker(goodVersion, goodSlot):
			r.Took = time.Since(start)
			c.say("%s: back on Cairn %s from slot %s by itself after %d failed boots", h.Name, goodVersion, goodSlot, r.FailedBoots)
			return r, nil
		default:
			return r, fmt.Errorf("%s booted the bad update: %q", h.Name, got)
		}
	}
}

// Eventually runs cmd on h until check accepts its output or ctx ends.
func Eventually(ctx context.Context, h *Host, cmd string, check func(string) bool) (string, error) {
	for {
		out, err := h.Run(ctx, cmd)
		if err == nil && check(out) {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("%s: %q never gave the expected output (last error %v):\n%s", h.Name, cmd, err, out)
		case <-time.After(2 * time.Second):
		}
	}
}

// semaphoreLog records every value of locksmith's reboot semaphore, with when it was seen.
type semaphoreLog struct {
	mu      sync.Mutex
	entries []semaphoreEntry
}

type semaphoreEntry struct {
	at      time.Time
	holders []string
}

func (l *semaphoreLog) add(v []byte) {
	s, err := locksmith.ParseSemaphore(v)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.entries = append(l.entries, semaphoreEntry{at: time.Now(), holders: s.Holders})
	l.mu.Unlock()
}

func (l *semaphoreLog) watch(ctx context.Context, c *clientv3.Client, started chan<- struct{}) {
	key := locksmith.SemaphoreKey("")
	rev := int64(0)
	if r, err := c.Get(ctx, key); err == nil {
		rev = r.Header.Revision + 1
		for _, kv := range r.Kvs {
			l.add(kv.Value)
		}
	}
	w := c.Watch(ctx, key, clientv3.WithRev(rev))
	close(started)
	for resp := range w {
		for _, ev := range resp.Events {
			l.add(ev.Kv.Value)
		}
	}
}

// holdersAt is the semaphore's holders as last seen before t.
func (l *semaphoreLog) holdersAt(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var h []string
	for _, e := range l.entries {
		if e.at.After(t) {
			break
		}
		h = e.holders
	}
	return h
}

// releasedAfter is when id was first seen not holding the semaphore after t.
func (l *semaphoreLog) releasedAfter(id string, t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.at.After(t) && !slices.Contains(e.holders, id) {
			return e.at, true
		}
	}
	return time.Time{}, false
}

func (l *semaphoreLog) maxHolders() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.entries {
		n = max(n, len(e.holders))
	}
	return n
}

// initLines are the console lines of Cairn's early boot.
func initLines(console string) string {
	var out []string
	for l := range strings.SplitSeq(console, "\n") {
		if strings.Contains(l, "cairn-init:") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
