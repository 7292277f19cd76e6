package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// DefaultSocket is where the daemon listens when there is no system D-Bus (and always, for
// update_engine_client).
const DefaultSocket = "/run/cairn/update_engine.sock"

// Socket methods: GetStatus, AttemptUpdate and ResetStatus mirror the D-Bus interface;
// Update blocks until the update finished; Watch streams status changes; Slots reports the
// slots.
const (
	MethodGetStatus     = "GetStatus"
	MethodAttemptUpdate = "AttemptUpdate"
	MethodResetStatus   = "ResetStatus"
	MethodUpdate        = "Update"
	MethodWatch         = "Watch"
	MethodSlots         = "Slots"
)

// Call is a request line on the socket.
type Call struct {
	Method string `json:"method"`
	// Force lets Update install a version that is not newer, or one this machine rolled back
	// from (an operator's decision).
	Force bool `json:"force,omitempty"`
}

// Reply is a response line; Update and Watch send several.
type Reply struct {
	Status *Status        `json:"status,omitempty"`
	Slots  *slots.Status  `json:"slots,omitempty"`
	Done   bool           `json:"done,omitempty"`
	Result string         `json:"result,omitempty"`
	Error  string         `json:"error,omitempty"`
	Extra  map[string]any `json:"extra,omitempty"`
}

// Server answers Calls on a unix socket.
type Server struct {
	Engine  *Engine
	Trigger chan<- struct{} // AttemptUpdate pokes the Run loop through it
	// UpdateCtx is the context Update calls run in: a client that goes away must not
	// cancel an update half-way (it would only start over).
	UpdateCtx context.Context
}

// Serve accepts connections on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var call Call
	enc := json.NewEncoder(c)
	if err := json.Unmarshal(line, &call); err != nil {
		enc.Encode(Reply{Error: "bad request: " + err.Error()})
		return
	}
	// Notice a client that hangs up, to end a Watch.
	go func() {
		io.Copy(io.Discard, c)
		cancel()
	}()
	e := s.Engine
	switch call.Method {
	case MethodGetStatus:
		st := e.Status()
		enc.Encode(Reply{Status: &st})
	case MethodAttemptUpdate:
		select {
		case s.Trigger <- struct{}{}:
		default: // a check is already pending
		}
		st := e.Status()
		enc.Encode(Reply{Status: &st, Done: true})
	case MethodResetStatus:
		if err := e.ResetStatus(ctx); err != nil {
			enc.Encode(Reply{Error: err.Error()})
			return
		}
		st := e.Status()
		enc.Encode(Reply{Status: &st, Done: true})
	case MethodSlots:
		st, err := e.Slots.Status(ctx)
		if err != nil {
			enc.Encode(Reply{Error: err.Error()})
			return
		}
		enc.Encode(Reply{Slots: st})
	case MethodWatch:
		ch, stop := e.Subscribe()
		defer stop()
		st := e.Status()
		if enc.Encode(Reply{Status: &st}) != nil {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case st := <-ch:
				if enc.Encode(Reply{Status: &st}) != nil {
					return
				}
			}
		}
	case MethodUpdate:
		ch, stop := e.Subscribe()
		defer stop()
		done := make(chan struct{})
		var res Result
		var uerr error
		uctx := s.UpdateCtx
		if uctx == nil {
			uctx = context.Background()
		}
		go func() {
			res, uerr = e.Update(uctx, omaha.InstallSourceOnDemand, call.Force)
			close(done)
		}()
		for {
			select {
			case st := <-ch:
				enc.Encode(Reply{Status: &st})
				continue
			case <-done:
			}
			break
		}
		if errors.Is(uerr, ErrBusy) {
			// The scheduled check is already at work: follow it to its end instead.
			res, uerr = follow(ctx, e, ch, enc)
		}
		r := Reply{Done: true, Result: [...]string{"no-update", "updated", "already-updated"}[res]}
		if uerr != nil {
			r.Error = uerr.Error()
		}
		st := e.Status()
		r.Status = &st
		enc.Encode(r)
	default:
		enc.Encode(Reply{Error: fmt.Sprintf("unknown method %q", call.Method)})
	}
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
	go func() {
		<-ctx.Done()
		c.Close()
	}()
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

// follow relays the status of an update someone else started until it ends.
func follow(ctx context.Context, e *Engine, ch <-chan Status, enc *json.Encoder) (Result, error) {
	st := e.Status()
	for {
		switch st.CurrentOperation {
		case OpNeedReboot:
			return ResultUpdated, nil
		case OpIdle:
			e.mu.Lock()
			busy := e.busy
			e.mu.Unlock()
			if !busy {
				if st.LastError != "" {
					return ResultNoUpdate, errors.New(st.LastError)
				}
				return ResultNoUpdate, nil
			}
		}
		select {
		case <-ctx.Done():
			return ResultNoUpdate, ctx.Err()
		case st = <-ch:
			enc.Encode(Reply{Status: &st})
		case <-time.After(time.Second):
			st = e.Status()
		}
	}
}
