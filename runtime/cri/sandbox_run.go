package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
)

// readyTimeout bounds the wait for a new sandbox's supervisor, whatever the caller's
// deadline: networks that take longer have failed.
const readyTimeout = 2 * time.Minute

// RunPodSandbox makes a sandbox and returns once it is ready, in these steps:
//
//  1. validate: the CRI config mapped onto a sandbox pod's (sandboxConfig), its name free;
//  2. prepare the sandbox pod (stage0: checked, then created with its manifest, locked);
//  3. start its supervisor, which takes over the pod's lock;
//  4. wait until it is ready: namespaces, cgroup, networks, socket;
//  5. record it in the index.
//
// A failure after step 2 takes down what was made: the supervisor, the pod and its
// networks. Nothing is left but the name's reservation, freed too.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	net, _ := s.network()
	cfg, sb, err := sandboxConfig(req.GetConfig(), req.GetRuntimeHandler(), sandboxChoice{network: net})
	if err != nil {
		return nil, err
	}
	name := sb.fullName()
	token := "pending-" + randomID()[:16]
	if err := s.idx.reserveSandbox(name, token); err != nil {
		return nil, err
	}
	p, err := s.host.PrepareSandbox(ctx, cfg)
	if err != nil {
		s.idx.releaseSandboxName(name, token)
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	sb.id, sb.createdAt = p.UUID, p.Time(pod.CreatedFile)
	undo := func(err error) (*runtimeapi.RunPodSandboxResponse, error) {
		if rerr := s.removePod(context.WithoutCancel(ctx), p.UUID); rerr != nil {
			s.log.Warn("remove a sandbox that failed to start; rkt gc will", "sandbox", p.UUID, "err", rerr)
		}
		s.idx.releaseSandboxName(name, token)
		return nil, fmt.Errorf("sandbox %s (%s): %w", name, p.UUID, err)
	}
	sup, err := s.startSupervisor(p)
	if err != nil {
		p.Close()
		return undo(err)
	}
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := sup.waitReady(wctx, p); err != nil {
		return undo(err)
	}
	s.idx.addSandbox(sb) // the name passes from the token to the sandbox
	s.log.Info("sandbox ready", "sandbox", sb.id, "name", name)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sb.id}, nil
}

// randomID is a container ID: 64 hex digits, as containerd's.
func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
