package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// maxExecOutput bounds what ExecSync keeps of each of a command's output streams.
const maxExecOutput = 16 << 20

// ExecSync runs a command in a running container and returns its output and exit code:
// kubelet's exec probes. The command joins the container's namespaces and cgroups as
// `rkt enter` does, as the container's process's user, with its environment and in its
// working directory; after the timeout (seconds; 0 for none) it is killed and the call
// fails with DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if len(req.GetCmd()) == 0 || req.GetCmd()[0] == "" {
		return nil, invalidf("no command to run")
	}
	if req.GetTimeout() < 0 {
		return nil, invalidf("negative timeout %d", req.GetTimeout())
	}
	c, p, a, err := s.runningApp(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	cmd := enterCommand(c, a, req.GetCmd())
	cmd.KillOnCancel = true
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runCtx := ctx
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	code, err := stage1.Enter(runCtx, p.Path(), c.app, cmd)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.id, err)
	}
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, deadlinef("command %q in container %s timed out after %ds", req.GetCmd(), c.id, req.GetTimeout())
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// runningApp finds a container whose app runs, with its sandbox's pod: NotFound for an
// unknown container, FailedPrecondition for one that does not run.
func (s *Server) runningApp(id string) (*container, *pod.Pod, *pod.App, error) {
	c, _, p, _, err := s.containerApp(id)
	if err != nil {
		return nil, nil, nil, err
	}
	apps, orphaned := podApps(p)
	a, ok := apps[c.app]
	if !ok || orphaned || a.State != pod.AppRunning {
		return nil, nil, nil, preconditionf("container %s is not running", c.id)
	}
	return c, p, a, nil
}

// enterCommand runs args as container c's process does: as its user, with its environment
// (its app's, then the variables appc cannot name), in its working directory.
func enterCommand(c *container, a *pod.App, args []string) stage1.EnterCommand {
	cmd := stage1.EnterCommand{Args: args}
	if ra := a.Runtime.App; ra != nil {
		for _, ev := range ra.Environment {
			cmd.Env = append(cmd.Env, ev.Name+"="+ev.Value)
		}
		cmd.Cwd = ra.WorkingDirectory
	}
	cmd.Env = append(cmd.Env, c.env...)
	if uid, gid, groups, err := processCreds(a.PID); err == nil {
		cmd.UID, cmd.GID, cmd.AdditionalGroups = uid, gid, groups
	}
	return cmd
}

// processCreds reads a process's user, group and supplementary groups from /proc.
func processCreds(pid int) (uid, gid int, groups []int, err error) {
	if pid <= 0 {
		return 0, 0, nil, errors.New("no process")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, nil, err
	}
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		fs := strings.Fields(v)
		switch {
		case k == "Uid" && len(fs) > 1:
			uid, err = strconv.Atoi(fs[1]) // effective
			found++
		case k == "Gid" && len(fs) > 1:
			gid, err = strconv.Atoi(fs[1])
			found++
		case k == "Groups":
			for _, f := range fs {
				g, gerr := strconv.Atoi(f)
				if gerr == nil {
					groups = append(groups, g)
				}
			}
		}
		if err != nil {
			return 0, 0, nil, err
		}
	}
	if found != 2 {
		return 0, 0, nil, fmt.Errorf("process %d: no Uid and Gid in its status", pid)
	}
	return uid, gid, groups, nil
}

// capped keeps the first maxExecOutput bytes written to it and drops the rest.
type capped struct {
	bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	if room := maxExecOutput - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
