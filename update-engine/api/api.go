// Package api is update_engine's unix-socket protocol: one JSON Call line from the client,
// JSON Reply lines back, and the status values (Container Linux's CURRENT_OP names) that
// update_engine_client and locksmithd read. It imports only the standard library, so that
// a client links none of the engine.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// DefaultSocket is where the daemon listens when there is no system D-Bus (and always, for
// update_engine_client).
const DefaultSocket = "/run/cairn/update_engine.sock"

// Methods: GetStatus, AttemptUpdate and ResetStatus mirror the D-Bus interface; Update
// blocks until the update finished; Watch streams status changes; Slots reports the slots.
const (
	MethodGetStatus     = "GetStatus"
	MethodAttemptUpdate = "AttemptUpdate"
	MethodResetStatus   = "ResetStatus"
	MethodUpdate        = "Update"
	MethodWatch         = "Watch"
	MethodSlots         = "Slots"
)

// Operations, named as CoreOS update_engine's CURRENT_OP values.
const (
	OpIdle            = "UPDATE_STATUS_IDLE"
	OpChecking        = "UPDATE_STATUS_CHECKING_FOR_UPDATE"
	OpUpdateAvailable = "UPDATE_STATUS_UPDATE_AVAILABLE"
	OpDownloading     = "UPDATE_STATUS_DOWNLOADING"
	OpVerifying       = "UPDATE_STATUS_VERIFYING"
	OpFinalizing      = "UPDATE_STATUS_FINALIZING"
	OpNeedReboot      = "UPDATE_STATUS_UPDATED_NEED_REBOOT"
	OpReportingError  = "UPDATE_STATUS_REPORTING_ERROR_EVENT"
)

// Status is what GetStatus returns and StatusUpdate signals.
type Status struct {
	LastCheckedTime  int64   `json:"last_checked_time"`
	Progress         float64 `json:"progress"`
	CurrentOperation string  `json:"current_operation"`
	NewVersion       string  `json:"new_version"`
	NewSize          int64   `json:"new_size"`
	Step             string  `json:"step,omitempty"`
	LastError        string  `json:"last_error,omitempty"`
}

// Result is how an Update ended.
type Result int

const (
	ResultNoUpdate       Result = iota
	ResultUpdated               // applied: a reboot is needed
	ResultAlreadyUpdated        // an update was applied earlier and awaits a reboot
)

// String is the Result's name in a Reply.
func (r Result) String() string {
	switch r {
	case ResultNoUpdate:
		return "no-update"
	case ResultUpdated:
		return "updated"
	case ResultAlreadyUpdated:
		return "already-updated"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// Slot states, as the boot counter in a slot's UKI file name tells them.
const (
	SlotEmpty  = "empty"  // no boot entry: the slot is not bootable
	SlotGood   = "good"   // blessed (or installed good)
	SlotTrying = "trying" // tries left: the loader will still try it
	SlotBad    = "bad"    // out of tries: rolled back from
)

// Slot is one slot in a SlotList.
type Slot struct {
	Slot      string `json:"slot"` // A or B
	Partition string `json:"partition"`
	Entry     string `json:"entry,omitempty"`
	Version   string `json:"version,omitempty"`
	State     string `json:"state"` // Slot*
	TriesLeft int    `json:"tries_left,omitempty"`
	TriesDone int    `json:"tries_done,omitempty"`
	Active    bool   `json:"active"`
	NextBoot  bool   `json:"next_boot"`
}

// SlotList is the Slots reply: both slots, the running one and the one the loader picks next.
type SlotList struct {
	Active   string `json:"active"`
	Inactive string `json:"inactive"`
	Next     string `json:"next,omitempty"`
	Slots    []Slot `json:"slots"`
}

// Call is a request line on the socket.
type Call struct {
	Method string `json:"method"`
	// Force lets Update install a version that is not newer, or one this machine rolled back
	// from (an operator's decision).
	Force bool `json:"force,omitempty"`
}

// Reply is a response line; Update and Watch send several.
type Reply struct {
	Status *Status   `json:"status,omitempty"`
	Slots  *SlotList `json:"slots,omitempty"`
	Done   bool      `json:"done,omitempty"`
	Result string    `json:"result,omitempty"` // a Result's String, in the last reply of Update
	Error  string    `json:"error,omitempty"`
}

// Dial sends one call to the daemon's socket and hands every reply to fn until fn returns
// false or the daemon closes the connection.
func Dial(ctx context.Context, socket string, call Call, fn func(Reply) bool) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("update_engine at %s: %w", socket, err)
	}
	defer c.Close()
	// Ending ctx ends a Watch or an Update that is still waiting for replies.
	defer context.AfterFunc(ctx, func() { c.Close() })()
	b, _ := json.Marshal(call)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return err
	}
	dec := json.NewDecoder(c)
	for {
		var r Reply
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("update_engine at %s: %w", socket, err)
		}
		if r.Error != "" && !r.Done {
			return errors.New(r.Error)
		}
		if !fn(r) {
			return nil
		}
	}
}
