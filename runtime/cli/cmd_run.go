package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fetch/pull"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
	"github.com/cairn-os/cairn/runtime/store"
)

// parsePodArgs parses rkt run/prepare's command line, global flags included, into p.
func parsePodArgs(c *cobra.Command, env *Env, p *podArgs, withRun bool, args []string) error {
	fs := p.flagSet(c.Name(), withRun)
	fs.SetOutput(env.Stderr)
	fs.AddFlagSet(c.InheritedFlags())
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := refuseStage1Image(fs); err != nil {
		return err
	}
	if env.G.Debug { // --debug came through this parser, after the logger was made
		env.Log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if p.help {
		fmt.Fprintf(env.Stdout, "Usage: rkt %s [flags] IMAGE [app flags] [-- image-args [---]] [IMAGE [app flags] ...]\n\nFlags:\n%s", c.Name(), fs.FlagUsages())
		return errHelp
	}
	ins, err := insecure.Parse(env.G.InsecureOptions)
	if err != nil {
		return err
	}
	p.cfg.InsecureSeccomp = ins.Has(insecure.Seccomp)
	if p.podManifest != "" {
		if p.cfg.PodManifest, err = readPodManifest(p.podManifest); err != nil {
			return err
		}
	}
	return nil
}

var errHelp = errors.New("help shown")

// host is stage0's view of this rkt: its pods, its store and fetcher, its network configs.
func host(env *Env, pullPolicy string) (*stage0.Host, error) {
	imgs, err := newStoreImages(env, pullPolicy)
	if err != nil {
		return nil, err
	}
	return hostWith(env, imgs), nil
}

// hostWith is host with its images found by imgs.
func hostWith(env *Env, imgs *storeImages) *stage0.Host {
	return &stage0.Host{
		Pods:        podStore(env),
		Images:      imgs,
		NetConfDirs: []string{filepath.Join(env.G.LocalConfig, "net.d"), filepath.Join(env.G.SystemConfig, "net.d")},
		// As rkt: third-party plugins beside the local configs first, then Cairn's and the
		// distribution's.
		NetPluginDirs: append([]string{filepath.Join(env.G.LocalConfig, "net.d")}, network.DefaultPluginDirs...),
		Environ:       os.Environ(),
		Log:           env.Log,
	}
}

// storeImages finds images by rkt's pull policies: never looks only in the store, new fetches
// what is not there, update asks the remote each time. It records their use.
type storeImages struct {
	env  *Env
	st   *store.Store
	pull pull.Policy
	// found are the images needRemote found in the store, by reference.
	found map[string]*image.Image
}

func newStoreImages(env *Env, pullPolicy string) (*storeImages, error) {
	policy, err := pull.Parse(pullPolicy)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(env.G.Dir)
	if err != nil {
		return nil, err
	}
	st.Log = env.Log
	return &storeImages{env: env, st: st, pull: policy}, nil
}

// needRemote is errRemote when this rkt has no Remote and one of refs needs it (by the pull
// policy, or not being in the store under that name): found before anything else is done, so
// that the full rkt, executed in this one's place, does not do it again.
func (s *storeImages) needRemote(ctx context.Context, refs []string) error {
	if s.env.remote != nil {
		return nil
	}
	for _, ref := range refs {
		if s.pull == pull.Update {
			return needRemote("image " + ref)
		}
		img, err := s.st.Get(ctx, ref)
		if errors.Is(err, store.ErrNotFound) && !image.IsID(ref) {
			return needRemote("image " + ref)
		}
		if err == nil {
			if s.found == nil {
				s.found = map[string]*image.Image{}
			}
			s.found[ref] = img
		}
	}
	return nil
}

func (s *storeImages) Image(ctx context.Context, ref string) (*image.Image, error) {
	img, err := s.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	// The record is written durably (0.2-1 ms, more while the disk is busy), so not on the
	// way to the pod's start; rkt waits for it before it exits.
	s.env.background(func() {
		if err := s.st.Touch(context.WithoutCancel(ctx), img.ID); err != nil {
			s.env.Log.Debug("recording image use", "image", img.ID, "err", err)
		}
	})
	return img, nil
}

func (s *storeImages) get(ctx context.Context, ref string) (*image.Image, error) {
	if s.pull == pull.Update {
		return s.fetch(ctx, ref, pull.Update)
	}
	if img, ok := s.found[ref]; ok {
		return img, nil
	}
	img, err := s.st.Get(ctx, ref)
	if err == nil {
		return img, nil
	}
	if !errors.Is(err, store.ErrNotFound) || image.IsID(ref) {
		// An ID names what is in the store; no fetcher finds it elsewhere.
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if s.pull == pull.Never {
		// The fetcher also knows stored images by the path or URL they came from.
		if img, ferr := s.fetch(ctx, ref, pull.Never); ferr == nil || errors.Is(ferr, errRemote) {
			return img, ferr
		}
		return nil, fmt.Errorf("image %s: %w (rkt fetch it first)", ref, err)
	}
	img, err = s.fetch(ctx, ref, s.pull)
	if err != nil && !errors.Is(err, errRemote) {
		return nil, fmt.Errorf("image %s: not in the store, and fetching it failed: %w", ref, err)
	}
	return img, err
}

// fetch fetches ref by policy through the Remote; without one, rkt goes on as the full binary.
func (s *storeImages) fetch(ctx context.Context, ref string, policy pull.Policy) (*image.Image, error) {
	if s.env.remote == nil {
		return nil, needRemote("image " + ref)
	}
	return s.env.remote.Fetch(ctx, s.env, s.st, policy, ref)
}

// runPod runs a prepared pod, locked, in the foreground.
func runPod(ctx context.Context, env *Env, p *pod.Pod, stopTimeout time.Duration) error {
	code, err := stage0.Run(ctx, p, stage0.RunOptions{Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr,
		Log: env.Log, StopTimeout: stopTimeout})
	if err != nil {
		return &ExitError{Code: stage1.ExitFailure, Err: err}
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// podCommand is rkt run and rkt prepare: the same flags and the same preparation of a pod, then
// done with the locked pod.
func podCommand(env *Env, use, short string, withRun bool, done func(*pod.Pod, *podArgs) error) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, DisableFlagParsing: true}
	c.RunE = func(c *cobra.Command, args []string) error {
		var p podArgs
		if err := parsePodArgs(c, env, &p, withRun, args); err != nil {
			if errors.Is(err, errHelp) {
				return nil
			}
			return err
		}
		imgs, err := newStoreImages(env, p.pullPolicy)
		if err != nil {
			return err
		}
		var refs []string
		for _, a := range p.cfg.Apps {
			refs = append(refs, a.Image)
		}
		if err := imgs.needRemote(env.Ctx, refs); err != nil {
			return err
		}
		pd, err := hostWith(env, imgs).Prepare(env.Ctx, &p.cfg)
		if err != nil {
			return err
		}
		return done(pd, &p)
	}
	return c
}

func init() {
	register(func(env *Env) *cobra.Command {
		return podCommand(env, "run [flags] IMAGE [app flags] [-- image-args [---]] [IMAGE ...]",
			"Run images in a new pod, in the foreground", true,
			func(pd *pod.Pod, p *podArgs) error {
				warnMDSRegister(env, p.mdsRegister)
				return runPod(env.Ctx, env, pd, p.stopTimeout)
			})
	})
}
