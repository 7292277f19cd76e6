package stage1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// requestTimeout bounds how long a client may take to send its request line.
const requestTimeout = 10 * time.Second

// serve answers requests on the supervisor's socket until the listener is closed.
func (s *sandbox) serve(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("supervisor socket", "pod", s.pod.UUID, "err", err)
			}
			return
		}
		go s.handle(conn)
	}
}

// handle answers one connection: one request, one reply, and for attach the app's streams.
func (s *sandbox) handle(conn *net.UnixConn) {
	defer conn.Close()
	if err := peerAllowed(conn); err != nil {
		s.log.Warn("supervisor socket: client refused", "pod", s.pod.UUID, "err", err)
		return
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(requestTimeout)) // fails only on a closed conn
	req, err := podapi.ReadRequest(br)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.reply(conn, podapi.ErrorReply(err))
		}
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	s.log.Debug("request", "pod", s.pod.UUID, "method", req.Method, "app", req.App)
	rep, err := s.do(req)
	if err != nil {
		s.reply(conn, podapi.ErrorReply(err))
		return
	}
	if req.Method == podapi.MethodAttach {
		s.attach(conn, br, req)
		return
	}
	s.reply(conn, rep)
}

func (s *sandbox) reply(conn *net.UnixConn, rep *podapi.Reply) {
	if err := podapi.WriteReply(conn, rep); err != nil {
		s.log.Debug("reply", "pod", s.pod.UUID, "err", err)
	}
}

// do carries out a request but attach (which only checks it can).
func (s *sandbox) do(req *podapi.Request) (*podapi.Reply, error) {
	timeout := s.stopTimeout
	if req.Timeout != nil {
		timeout = *req.Timeout
	}
	switch req.Method {
	case podapi.MethodAdd:
		rec, err := s.add(req.Add)
		if err != nil {
			return nil, err
		}
		st := appStatus(rec)
		return &podapi.Reply{App: &st}, nil
	case podapi.MethodStart:
		rec, err := s.start(req.App)
		if err != nil {
			return nil, err
		}
		st := appStatus(rec)
		return &podapi.Reply{App: &st}, nil
	case podapi.MethodStop:
		rec, err := s.stop(req.App, timeout)
		if err != nil {
			return nil, err
		}
		st := appStatus(rec)
		return &podapi.Reply{App: &st}, nil
	case podapi.MethodUpdate:
		rec, err := s.update(req.App, req.Resources)
		if err != nil {
			return nil, err
		}
		st := appStatus(rec)
		return &podapi.Reply{App: &st}, nil
	case podapi.MethodRemove:
		return &podapi.Reply{}, s.remove(req.App, timeout)
	case podapi.MethodResize:
		a, err := s.get(req.App)
		if err != nil {
			return nil, err
		}
		if err := a.io.resize(req.Rows, req.Cols); err != nil {
			return nil, err
		}
		return &podapi.Reply{}, nil
	case podapi.MethodReopenLogs:
		return &podapi.Reply{}, s.reopenLogs(req.App)
	case podapi.MethodStatus:
		return &podapi.Reply{Apps: s.status()}, nil
	case podapi.MethodAttach:
		a, err := s.get(req.App)
		if err != nil {
			return nil, err
		}
		if req.Stdin && !a.io.hasStdin() {
			return nil, fmt.Errorf("app %s was added without a stdin (--stdin=stream or tty): %w", req.App, podapi.ErrState)
		}
		return &podapi.Reply{TTY: a.io.tty}, nil
	}
	return nil, fmt.Errorf("method %q: %w", req.Method, podapi.ErrInvalid)
}

// attach replies, then copies the app's output to the client (in frames, or raw from a
// tty) and the client's input to the app, until the app's output ends or the client goes.
func (s *sandbox) attach(conn *net.UnixConn, br *bufio.Reader, req *podapi.Request) {
	a, err := s.get(req.App)
	if err != nil {
		s.reply(conn, podapi.ErrorReply(err))
		return
	}
	sub := a.io.subscribe(req.Stdout, req.Stderr)
	if sub == nil {
		s.reply(conn, podapi.ErrorReply(fmt.Errorf("app %s has exited: %w", req.App, podapi.ErrState)))
		return
	}
	defer a.io.unsubscribe(sub)
	if err := podapi.WriteReply(conn, &podapi.Reply{TTY: a.io.tty}); err != nil {
		return
	}
	// Input: to the app's stdin when asked for; read either way, so that a client that
	// goes away is noticed.
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := br.Read(buf)
			if n > 0 && req.Stdin {
				if werr := a.io.writeStdin(buf[:n]); werr != nil {
					req.Stdin = false
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) && req.Stdin && req.CloseStdin {
					if cerr := a.io.closeStdin(); cerr != nil {
						s.log.Debug("close app stdin", "app", req.App, "err", cerr)
					}
				}
				if !errors.Is(err, io.EOF) {
					a.io.unsubscribe(sub) // the client is gone: stop sending
				}
				return
			}
		}
	}()
	for c := range sub.ch {
		var err error
		if a.io.tty {
			_, err = conn.Write(c.data)
		} else {
			err = podapi.WriteFrame(conn, c.stream, c.data)
		}
		if err != nil {
			return
		}
	}
}
