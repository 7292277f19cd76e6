package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/e2e/fleettest"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// TestCluster is scenarios 3 to 6 on a two-host cluster: the hosts get subnets from one etcd
// and a pod on one reaches a pod on the other over VXLAN; both take an update from the Omaha
// server and reboot into it one at a time (etcd-lock, max 1); then one of them is offered an
// update whose /usr fails dm-verity, tries it, and comes back on the good slot by itself.
func TestCluster(t *testing.T) {
	im := fleettest.Images(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := fleet.NewCluster(ctx, t.TempDir(), im, fleettest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Fleet.Close()
	for _, h := range c.Hosts {
		watch(t, h)
	}
	start := time.Now()
	if err := c.Boot(ctx, fleet.Old, "A"); err != nil {
		t.Fatal(err)
	}
	t.Logf("both hosts up %v after the start", time.Since(start).Round(time.Second))
	// What early boot did on a cloud-style first boot (a disk 1 GiB larger than the image).
	for _, want := range []string{"cairn-init: open dm-verity: ok", "cairn-init: ROOT has no /etc", "cairn-init: grew ROOT to", "first-boot config applied"} {
		if !strings.Contains(c.Hosts[0].VM().Console(), want) {
			t.Errorf("%s's console lacks %q", c.Hosts[0].Name, want)
		}
	}

	// Scenario 3.
	ov, err := c.Overlay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Subnets[0] == "" || ov.Subnets[0] == ov.Subnets[1] {
		t.Errorf("subnets %q and %q: want two distinct ones", ov.Subnets[0], ov.Subnets[1])
	}
	if !strings.Contains(ov.Answer, "answered: hello from rkt-") || !strings.Contains(ov.Answer, "("+ov.PodIP+")") {
		t.Errorf("the pod on %s got %q from %s", c.Hosts[1].Name, ov.Answer, ov.PodIP)
	}
	t.Logf("scenario 3, overlay: pod to pod across hosts %v after both were up", ov.Took.Round(time.Second))
	if t.Failed() {
		return
	}

	// Scenarios 4 and 6.
	up, err := c.Update(ctx, im.NewPayload())
	if err != nil {
		t.Fatal(err)
	}
	last := up.Reboots[len(up.Reboots)-1].Up
	t.Logf("scenario 4, update: both hosts on %s %v after the offer", fleet.New, last.Sub(up.Offered).Round(time.Second))
	for _, h := range c.Hosts {
		if got, err := h.Run(ctx, ". /etc/os-release; echo $VERSION_ID"); err != nil || strings.TrimSpace(got) != fleet.New {
			t.Errorf("%s: /etc/os-release says %q (%v)", h.Name, got, err)
		}
		gctx, gcancel := context.WithTimeout(ctx, 3*time.Minute)
		if _, err := fleet.WaitGood(gctx, h, disklayout.SlotB); err != nil {
			t.Error(err)
		}
		gcancel()
		ectx, ecancel := context.WithTimeout(ctx, 2*time.Minute)
		if err := c.WaitEvent(ectx, h, fleet.New, omaha.KindComplete, 0); err != nil {
			t.Errorf("%v; events: %+v", err, eventsOf(c.Fleet))
		}
		ecancel()
	}
	// Scenario 6: each host held the lock from before it went down until it was back, and
	// the lock (max 1) was never held twice: the two were never down at once.
	if up.MaxHolders != 1 {
		t.Errorf("the reboot semaphore had at most %d holders; want 1", up.MaxHolders)
	}
	for _, rb := range up.Reboots {
		id, _ := c.MachineID(ctx, rb.Host)
		if !slices.Contains(rb.HeldAt, id) {
			t.Errorf("%s went down while the semaphore's holders were %v", rb.Host.Name, rb.HeldAt)
		}
		if rb.Released.IsZero() {
			t.Errorf("%s never released the reboot lock", rb.Host.Name)
		}
	}
	if a, b := up.Reboots[0], up.Reboots[1]; !a.Released.IsZero() && !b.Down.After(a.Released) {
		t.Errorf("%s went down at %v, before %s released the lock at %v", b.Host.Name, b.Down, a.Host.Name, a.Released)
	}
	for _, rb := range up.Reboots {
		t.Logf("scenario 6: %s held the reboot lock from before +%v (down) until +%v (released); back up at +%v",
			rb.Host.Name, rb.Down.Sub(up.Offered).Round(time.Second), rb.Released.Sub(up.Offered).Round(time.Second), rb.Up.Sub(up.Offered).Round(time.Second))
	}
	if t.Failed() {
		return
	}

	// Scenario 5, on host 1 alone.
	c.Hosts[1].Stop()
	h := c.Hosts[0]
	rb, err := c.Rollback(ctx, h, im.BadPayload, fleet.New, "B")
	if err != nil {
		t.Fatal(err)
	}
	if rb.FailedBoots == 0 {
		t.Error("the bad update was never tried")
	}
	t.Logf("scenario 5, rollback: %d failed boots, back on %s %v after the offer", rb.FailedBoots, fleet.New, rb.Took.Round(time.Second))
	st, err := fleet.Slots(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Active != disklayout.SlotB || st.Slot(disklayout.SlotA).State != slots.StateBad || st.Slot(disklayout.SlotA).Version != fleet.Bad {
		t.Errorf("%s slots after the rollback: %+v", h.Name, st)
	}
	ectx, ecancel := context.WithTimeout(ctx, 2*time.Minute)
	defer ecancel()
	if err := c.WaitEvent(ectx, h, "", omaha.KindError, omaha.ErrorCodeRollback); err != nil {
		t.Errorf("%v; events: %+v", err, eventsOf(c.Fleet))
	}
}

// eventsOf is the console's events, or why they could not be read, for a failure message.
func eventsOf(f *fleet.Fleet) any {
	evs, err := f.Events()
	if err != nil {
		return err
	}
	return evs
}
