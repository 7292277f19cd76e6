package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

// DefaultProgressInterval is how often an update's progress is reported to the server by
// default: a few reports for an update of a minute, none for one that takes seconds.
const DefaultProgressInterval = 10 * time.Second

// PodsTimeout bounds the pod listing of a check: a slow runtime delays no check for long.
const PodsTimeout = 10 * time.Second

func (e *Engine) progressInterval() time.Duration {
	if e.ProgressInterval == 0 {
		return DefaultProgressInterval
	}
	return e.ProgressInterval
}

// report is the engine's status as the server is told it (omaha.Report): the operation,
// step and progress of an update under way or that failed; nothing for an engine that is
// idle or checking.
func (e *Engine) report() omaha.Report {
	st := e.Status()
	switch st.CurrentOperation {
	case api.OpDownloading, api.OpVerifying, api.OpFinalizing, api.OpNeedReboot, api.OpReportingError:
		return omaha.Report{Operation: st.CurrentOperation, Step: st.Step, Progress: omaha.Fraction(st.Progress).Round()}
	}
	return omaha.Report{}
}

// reportProgress tells the server the status of the update every ProgressInterval, when it
// changed since the last report, until stop is called: a request with Cairn's report and no
// ping, update check or event, which Nebraska answers without recording anything. A report
// that fails is dropped (the next one or the next event says more), and none holds up the
// update: they are sent from a goroutine of their own, one at a time.
func (e *Engine) reportProgress(ctx context.Context) (stop func()) {
	every := e.progressInterval()
	if every < 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		var last omaha.Report
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			r := e.report()
			if r == last || r.Operation == "" {
				continue
			}
			rctx, cancelReport := context.WithTimeout(ctx, max(every, 5*time.Second))
			_, err := e.Omaha.Do(rctx, e.Request("", false, r))
			cancelReport()
			if err != nil {
				e.log().Debug("progress report not sent", "err", err)
				continue
			}
			last = r
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// pods is the machine's pod list for a check's report, bounded (omaha.BoundPods); nil when
// the engine lists none or the listing failed, which the log says and the check goes on
// without.
func (e *Engine) pods(ctx context.Context) *omaha.Pods {
	if e.Pods == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, PodsTimeout)
	defer cancel()
	pods, err := e.Pods(ctx)
	if err != nil {
		e.log().Info("no pods in the report", "err", err)
		return nil
	}
	return omaha.BoundPods(pods)
}

// CommandPods lists pods by running argv (Cairn's rkt: "rkt list --format=json") and reading
// its JSON, so that the engine depends on the runtime's output, not its code. The command
// gets the caller's context, whose deadline kills it.
func CommandPods(argv []string) func(context.Context) ([]omaha.Pod, error) {
	return func(ctx context.Context) ([]omaha.Pod, error) {
		if len(argv) == 0 {
			return nil, errors.New("pods: no command")
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = &limitedWriter{w: &stdout, n: maxListOutput}, &limitedWriter{w: &stderr, n: 4096}
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("pods: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
		}
		pods, err := ParseRktList(stdout.Bytes())
		if err != nil {
			return nil, fmt.Errorf("pods: %s: %w", strings.Join(argv, " "), err)
		}
		return pods, nil
	}
}

// maxListOutput bounds what is read of the runtime's list: a few thousand pods.
const maxListOutput = 8 << 20

// limitedWriter keeps the first n bytes and discards the rest (a runaway command cannot
// fill the engine's memory); the command still sees its writes succeed.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// rktPod is what the engine reads of a pod in rkt list --format=json (rkt's api/v1 Pod, as
// Cairn's rkt writes it): its UUID ("name"), state and apps with their images and states.
type rktPod struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Apps  []struct {
		Name    string `json:"name"`
		State   string `json:"state"`
		Image   string `json:"image"`
		ImageID string `json:"image_id"`
	} `json:"apps"`
	AppNames []string `json:"app_names"`
}

// ParseRktList reads rkt list --format=json: a JSON array of pods. A pod without its apps'
// details (rkt's older output) lists its app names.
func ParseRktList(b []byte) ([]omaha.Pod, error) {
	var list []rktPod
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("rkt list: %w", err)
	}
	pods := make([]omaha.Pod, 0, len(list))
	for _, p := range list {
		pod := omaha.Pod{UUID: p.Name, State: p.State}
		for _, a := range p.Apps {
			img := a.Image
			if img == "" {
				img = a.ImageID
			}
			pod.Apps = append(pod.Apps, omaha.PodApp{Name: a.Name, Image: img, State: a.State})
		}
		if len(p.Apps) == 0 {
			for _, n := range p.AppNames {
				pod.Apps = append(pod.Apps, omaha.PodApp{Name: n})
			}
		}
		pods = append(pods, pod)
	}
	return pods, nil
}
