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
	enc := json.NewEncoder(c)
	// A reply that cannot be written means the client went away: its connection is served
	// no longer.
	send := func(r api.Reply) error { return enc.Encode(r) }
	var call api.Call
	if err := json.Unmarshal(line, &call); err != nil {
		if err := send(api.Reply{Error: "bad request: " + err.Error()}); err != nil {
			s.Engine.log().Debug("socket client went away", "err", err)
		}
		return
	}
	// Notice a client that hangs up, to end a Watch. Whatever ends the copy, EOF or an
	// error, the client is gone.
	go func() {
		_, _ = io.Copy(io.Discard, c)
		cancel()
	}()
	if err := s.answer(ctx, call, send); err != nil {
		s.Engine.log().Debug("socket client went away", "method", call.Method, "err", err)
	}
}

// answer serves one call. Its error is a reply send could not write; the engine's own
// errors go to the client in the reply.
func (s *Server) answer(ctx context.Context, call api.Call, send func(api.Reply) error) error {
	e := s.Engine
	switch call.Method {
	case api.MethodGetStatus:
		st := e.Status()
		return send(api.Reply{Status: &st})
	case api.MethodAttemptUpdate:
		select {
		case s.Trigger <- struct{}{}:
		default: // a check is already pending
		}
		st := e.Status()
		return send(api.Reply{Status: &st, Done: true})
	case api.MethodResetStatus:
		if err := e.ResetStatus(ctx); err != nil {
			return send(api.Reply{Error: err.Error()})
		}
		st := e.Status()
		return send(api.Reply{Status: &st, Done: true})
	case api.MethodSlots:
		st, err := e.Slots.Status(ctx)
		if err != nil {
			return send(api.Reply{Error: err.Error()})
		}
		return send(api.Reply{Slots: slotList(st)})
	case api.MethodWatch:
		ch, stop := e.Subscribe()
		defer stop()
		st := e.Status()
		if err := send(api.Reply{Status: &st}); err != nil {
			return err
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case st := <-ch:
				if err := send(api.Reply{Status: &st}); err != nil {
					return err
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
	relay:
		for {
			select {
			case st := <-ch:
				if err := send(api.Reply{Status: &st}); err != nil {
					// The update goes on without its client; Serve still waits for it.
					<-done
					return err
				}
			case <-done:
				break relay
			}
		}
		if errors.Is(uerr, ErrBusy) {
			// The scheduled check is already at work: follow it to its end instead.
			var werr error
			res, uerr = follow(ctx, e, ch, func(r api.Reply) error { werr = send(r); return werr })
			if werr != nil {
				return werr
			}
		}
		r := api.Reply{Done: true, Result: res.String()}
		if uerr != nil {
			r.Error = uerr.Error()
		}
		st := e.Status()
		r.Status = &st
		return send(r)
	default:
		return send(api.Reply{Error: fmt.Sprintf("unknown method %q", call.Method)})
	}
}

// follow relays the status of an update someone else started until it ends, or until send
// fails.
func follow(ctx context.Context, e *Engine, ch <-chan api.Status, send func(api.Reply) error) (api.Result, error) {
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
			if err := send(api.Reply{Status: &st}); err != nil {
				return api.ResultNoUpdate, err
			}
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
