package cgprime

import (
	"testing"
	"time"
)

// Wait waits for the move Started was given; a second Started runs nothing.
func TestStarted(t *testing.T) {
	Wait() // none started: returns at once
	release := make(chan struct{})
	finished := make(chan struct{})
	Started(func() {
		<-release
		close(finished)
	})
	second := make(chan struct{})
	Started(func() { close(second) })
	waited := make(chan struct{})
	go func() {
		Wait()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("Wait returned before the move was over")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-waited
	select {
	case <-finished:
	default:
		t.Error("Wait returned, the move not over")
	}
	select {
	case <-second:
		t.Error("the second Started ran its move")
	case <-time.After(50 * time.Millisecond):
	}
}
