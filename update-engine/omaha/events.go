package omaha

import "fmt"

// The events of one update, in the order a Cairn machine sends them. Each moves the
// machine's instance one state on in Nebraska (granted → downloading → downloaded →
// installed → complete, or → error), for any application id:
//
//   - Installed is Nebraska's 800/1, not update_engine's 3/1: Nebraska counts 3/1 as the end
//     of the update for every application but Flatcar's, and refuses the machine's later
//     reports (the reboot's result, a rollback) as "no update in progress".
//   - Complete is 3/2 with the previous version, as update_engine sent it after the reboot;
//     Cairn sends it once the new version is blessed good, so that a rollback by boot
//     counting comes while Nebraska still has the update in progress and is recorded.
//
// An error ends the update in Nebraska as well: the next check may be offered it again.

// DownloadStarted is sent as the payload's download starts (13/1).
func DownloadStarted() *EventRequest {
	return &EventRequest{Type: EventTypeUpdateDownloadStarted, Result: EventResultSuccess}
}

// DownloadFinished is sent when the download is complete (14/1).
func DownloadFinished() *EventRequest {
	return &EventRequest{Type: EventTypeUpdateDownloadFinished, Result: EventResultSuccess}
}

// Installed is sent when the update is written and is the next boot (800/1).
func Installed() *EventRequest {
	return &EventRequest{Type: EventTypeUpdateInstalled, Result: EventResultSuccess}
}

// Complete is sent by the new version, running and blessed good (3/2 with previous, the
// version it replaced).
func Complete(previous string) *EventRequest {
	return &EventRequest{Type: EventTypeUpdateComplete, Result: EventResultSuccessReboot, PreviousVersion: previous}
}

// Failed reports that the update failed with code (3/0).
func Failed(code ErrorCode) *EventRequest {
	return &EventRequest{Type: EventTypeUpdateComplete, Result: EventResultError, ErrorCode: code}
}

// RolledBack reports that version never booted to good and the machine is back on the
// version it had (3/0, error 44, previousversion = the version that failed), after
// triesDone boots of it with triesLeft tries left (Cairn's attributes; 0 when unknown).
func RolledBack(version string, triesDone, triesLeft int) *EventRequest {
	return &EventRequest{Type: EventTypeUpdateComplete, Result: EventResultError, ErrorCode: ErrorCodeRollback, PreviousVersion: version,
		TriesDone: Int(triesDone), TriesLeft: Int(triesLeft)}
}

// Kind is what an event tells about an update, read as Nebraska reads it.
type Kind string

const (
	KindNone        Kind = ""            // nothing about an update
	KindDownloading Kind = "downloading" // 13/1
	KindDownloaded  Kind = "downloaded"  // 14/1
	KindInstalled   Kind = "installed"   // 800/1, or update_engine's 3/1
	KindComplete    Kind = "complete"    // 3/2 with a previous version
	KindError       Kind = "error"       // any result 0
)

// Kind classifies the event. update_engine's 3/1 is "installed" (what it meant, and what
// Nebraska reads for Flatcar's application); its 3/2 without a previous version (or with
// 0.0.0.0), which it sends with the first check after every start, tells nothing.
func (ev *EventRequest) Kind() Kind {
	switch {
	case ev.Result == EventResultError:
		return KindError
	case ev.Type == EventTypeUpdateDownloadStarted && ev.Result == EventResultSuccess:
		return KindDownloading
	case ev.Type == EventTypeUpdateDownloadFinished && ev.Result == EventResultSuccess:
		return KindDownloaded
	case ev.Type == EventTypeUpdateInstalled && ev.Result == EventResultSuccess,
		ev.Type == EventTypeUpdateComplete && ev.Result == EventResultSuccess:
		return KindInstalled
	case ev.Type == EventTypeUpdateComplete && ev.Result == EventResultSuccessReboot:
		if ev.PreviousVersion == "" || ev.PreviousVersion == "0.0.0.0" {
			return KindNone
		}
		return KindComplete
	}
	return KindNone
}

// String says what the event reports, with its numbers.
func (ev *EventRequest) String() string {
	s := fmt.Sprintf("%d/%d", int(ev.Type), int(ev.Result))
	if k := ev.Kind(); k != KindNone {
		s = string(k) + " (" + s + ")"
	} else {
		s = ev.Type.String() + ", " + ev.Result.String() + " (" + s + ")"
	}
	if ev.ErrorCode != 0 {
		s += fmt.Sprintf(", error %d (%s)", int(ev.ErrorCode), ev.ErrorCode)
	}
	if ev.PreviousVersion != "" {
		s += ", previous version " + ev.PreviousVersion
	}
	if ev.TriesDone != 0 || ev.TriesLeft != 0 {
		s += fmt.Sprintf(", %d boot tries, %d left", int(ev.TriesDone), int(ev.TriesLeft))
	}
	return s
}
