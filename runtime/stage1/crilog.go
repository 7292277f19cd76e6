package stage1

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// An app of a sandbox writes its output to a log file in the CRI's format, which kubelet
// reads (kubernetes' pkg/kubelet/kuberuntime/logs, cri-o's conmon, containerd's cri): one
// line per line of output,
//
//	<RFC 3339 time, nanoseconds> <stdout|stderr> <F|P> <content>
//
// F for a full line, P for a piece of one: a line longer than maxLogLine is cut into pieces
// of that size, all P but the last, and the last bytes an app wrote without a newline are a
// P line too.

// maxLogLine is where a long line is cut: containerd's default max_container_log_line_size.
const maxLogLine = 16 << 10

// Log tags.
const (
	logFull    = "F"
	logPartial = "P"
)

// lineSplitter cuts one output stream into log lines, calling emit for each with its
// content (without the newline, valid only during the call) and whether it is a piece.
type lineSplitter struct {
	max  int
	buf  []byte
	emit func(line []byte, partial bool)
}

// write takes the next bytes of the stream.
func (s *lineSplitter) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.buf = append(s.buf, p...)
			p = nil
		} else {
			s.buf = append(s.buf, p[:i]...)
			p = p[i+1:]
		}
		// A line of exactly max bytes waits for its newline to be a full one.
		for len(s.buf) > s.max {
			s.emit(s.buf[:s.max], true)
			s.buf = append(s.buf[:0], s.buf[s.max:]...)
		}
		if i >= 0 {
			s.emit(s.buf, false)
			s.buf = s.buf[:0]
		}
	}
}

// flush ends the stream: what is left, a line without its newline, is a piece.
func (s *lineSplitter) flush() {
	if len(s.buf) > 0 {
		s.emit(s.buf, true)
		s.buf = s.buf[:0]
	}
}

// criLogLine formats one log line.
func criLogLine(t time.Time, stream string, partial bool, content []byte) []byte {
	tag := logFull
	if partial {
		tag = logPartial
	}
	b := make([]byte, 0, len(content)+48)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, content...)
	return append(b, '\n')
}

// logFile is an app's log file, reopened by path after a rotation moved it (SIGUSR1 to the
// supervisor, or a ReopenLogs request): lines written before the reopen are in the old
// file, lines after it in the new one, none in neither.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
	err  error // the last write error, reported once
}

func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// reopen opens the log path again (creating the file), and closes the file it replaces.
func (l *logFile) reopen() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return fmt.Errorf("log %s: %w", l.path, err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log %s: %w", l.path, err)
	}
	l.mu.Lock()
	old := l.f
	l.f, l.err = f, nil
	l.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// write appends a line of stream, timed as it is written, so that the log's times go up
// even with stdout and stderr written at once. A failure is returned once (a full disk must
// not stop the app, whose output still goes to the journal and to attached clients).
func (l *logFile) write(stream string, partial bool, content []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	if _, err := l.f.Write(criLogLine(time.Now(), stream, partial, content)); err != nil {
		first := l.err == nil
		l.err = err
		if first {
			return fmt.Errorf("log %s: %w", l.path, err)
		}
	}
	return nil
}

func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// oomKills reads the oom_kill count of a memory cgroup's memory.events (v2) or
// memory.oom_control (v1, Linux 4.13 and later): how many of its processes the OOM killer
// ended.
func oomKills(text string) int {
	for l := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
