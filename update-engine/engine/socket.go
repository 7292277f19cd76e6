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

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// Server answers api.Calls on a unix socket.
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
		wg.Go(func() {
			defer c.Close()
			s.handle(ctx, c)
		})
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var call api.Call
	enc := json.NewEncoder(c)
	if err := json.Unmarshal(line, &call); err != nil {
		enc.Encode(api.Reply{Error: "bad request: " + err.Error()})
		return
	}
	// Notice a client that hangs up, to end a Watch.
	go func() {
		io.Copy(io.Discard, c)
		cancel()
	}()
	e := s.Engine
	switch call.Method {
	case api.MethodGetStatus:
		st := e.Status()
		enc.Encode(api.Reply{Status: &st})
	case api.MethodAttemptUpdate:
		select {
		case s.Trigger <- struct{}{}:
		default: // a check is already pending
		}
		st := e.Status()
		enc.Encode(api.Reply{Status: &st, Done: true})
	case api.MethodResetStatus:
		if err := e.ResetStatus(ctx); err != nil {
			enc.Encode(api.Reply{Error: err.Error()})
			return
		}
		st := e.Status()
		enc.Encode(api.Reply{Status: &st, Done: true})
	case api.MethodSlots:
		st, err := e.Slots.Status(ctx)
		if err != nil {
			enc.Encode(api.Reply{Error: err.Error()})
			return
		}
		enc.Encode(api.Reply{Slots: slotList(st)})
	case api.MethodWatch:
		ch, stop := e.Subscribe()
		defer stop()
		st := e.Status()
		if enc.Encode(api.Reply{Status: &st}) != nil {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case st := <-ch:
				if enc.Encode(api.Reply{Status: &st}) != nil {
					return
				}
			}
		}
	case api.MethodUpdate:
		ch, stop := e.Subscribe()
		defer stop()
		done := make(chan struct{})
		var res api.Result
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
				enc.Encode(api.Reply{Status: &st})
				continue
			case <-done:
			}
			break
		}
		if errors.Is(uerr, ErrBusy) {
			// The scheduled check is already at work: follow it to its end instead.
			res, uerr = follow(ctx, e, ch, enc)
		}
		r := api.Reply{Done: true, Result: res.String()}
		if uerr != nil {
			r.Error = uerr.Error()
		}
		st := e.Status()
		r.Status = &st
		enc.Encode(r)
	default:
		enc.Encode(api.Reply{Error: fmt.Sprintf("unknown method %q", call.Method)})
	}
}

// follow relays the status of an update someone else started until it ends.
func follow(ctx context.Context, e *Engine, ch <-chan api.Status, enc *json.Encoder) (api.Result, error) {
	st := e.Status()
	for {
		switch st.CurrentOperation {
		case api.OpNeedReboot:
			return api.ResultUpdated, nil
		case api.OpIdle:
			e.mu.Lock()
			busy := e.busy
			e.mu.Unlock()
			if !busy {
				if st.LastError != "" {
					return api.ResultNoUpdate, errors.New(st.LastError)
				}
				return api.ResultNoUpdate, nil
			}
		}
		select {
		case <-ctx.Done():
			return api.ResultNoUpdate, ctx.Err()
		case st = <-ch:
			enc.Encode(api.Reply{Status: &st})
		case <-time.After(time.Second):
			st = e.Status()
		}
	}
}

// slotList is the Slots reply for st. Its JSON is st's: update_engine_client -slots
// -format=json prints what the engine sends.
func slotList(st *slots.Status) *api.SlotList {
	if st == nil {
		return nil
	}
	l := &api.SlotList{Active: string(st.Active), Inactive: string(st.Inactive), Next: string(st.Next)}
	if st.Slots != nil {
		l.Slots = make([]api.Slot, 0, len(st.Slots))
	}
	for _, s := range st.Slots {
		l.Slots = append(l.Slots, api.Slot{Slot: string(s.Slot), Partition: s.Partition, Entry: s.Entry, Version: s.Version,
			State: string(s.State), TriesLeft: s.TriesLeft, TriesDone: s.TriesDone, Active: s.Active, NextBoot: s.NextBoot})
	}
	return l
}
