package cri

import (
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container events (GetContainerEvents, kubelet's evented PLEG): created, started and
// deleted as the calls that do it return; stopped when an exit is seen, by StopContainer,
// a sandbox's stop, or the reconciler's look at the records.

// eventBuffer is how many events a slow subscriber may be behind before it is dropped
// (kubelet then relists).
const eventBuffer = 1024

type broker struct {
	mu     sync.Mutex
	subs   map[chan *runtimeapi.ContainerEventResponse]struct{}
	closed bool
}

func newBroker() *broker {
	return &broker{subs: map[chan *runtimeapi.ContainerEventResponse]struct{}{}}
}

func (b *broker) subscribe() chan *runtimeapi.ContainerEventResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan *runtimeapi.ContainerEventResponse, eventBuffer)
	if b.closed {
		close(ch)
		return ch
	}
	b.subs[ch] = struct{}{}
	return ch
}

func (b *broker) unsubscribe(ch chan *runtimeapi.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[ch]; ok {
		delete(b.subs, ch)
		close(ch)
	}
}

func (b *broker) send(ev *runtimeapi.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default: // too far behind: its stream ends, and kubelet relists
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

func (b *broker) active() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0
}

// publish sends an event about c with its sandbox's status and its containers'.
func (s *Server) publish(c *container, typ runtimeapi.ContainerEventType) {
	if typ == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT || typ == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
		s.stateMu.Lock()
		s.lastState[c.id] = runtimeapi.ContainerState_CONTAINER_EXITED
		s.stateMu.Unlock()
	}
	if !s.events.active() {
		return
	}
	ev := &runtimeapi.ContainerEventResponse{ContainerId: c.id, ContainerEventType: typ, CreatedAt: time.Now().UnixNano()}
	if sb, err := s.idx.sandbox(c.sandboxID); err == nil {
		p, _ := s.sandboxPod(sb)
		ev.PodSandboxStatus = s.sandboxStatus(sb, p)
		ev.ContainersStatuses = s.containerStatuses(sb, p)
	}
	s.events.send(ev)
}

// noteExit publishes a container's stop, once.
func (s *Server) noteExit(c *container) {
	s.stateMu.Lock()
	seen := s.lastState[c.id] == runtimeapi.ContainerState_CONTAINER_EXITED
	s.stateMu.Unlock()
	if !seen {
		s.publish(c, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
}

// noteStopped publishes the stops of a sandbox's containers that had not been seen.
func (s *Server) noteStopped(sb *sandbox) {
	for _, c := range s.idx.listContainers(sb.id) {
		s.noteExit(c)
	}
}

// forget drops what is kept of a removed container for events and stats.
func (s *Server) forget(id string) {
	s.stateMu.Lock()
	delete(s.lastState, id)
	s.stateMu.Unlock()
	s.statsMu.Lock()
	delete(s.cpuSamples, id)
	s.statsMu.Unlock()
}

// GetContainerEvents streams container events until the client goes.
func (s *Server) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return unavailablef("the event stream ended (rktlet is stopping, or the client fell behind); list again")
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}
