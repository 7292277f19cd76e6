// Package remote is the part of rkt's command line that needs the network or OpenPGP: rkt
// fetch, trust and config, and fetching the images that run and prepare do not find in the
// store (cli.Remote). The full rkt binary (cmd/rkt-fetch) links it; cmd/rkt does not, and
// executes the full binary in its place for those.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/cli"
	"github.com/cairn-os/cairn/runtime/fetch"
	insecureopt "github.com/cairn-os/cairn/runtime/fetch/insecure"
	"github.com/cairn-os/cairn/runtime/fetch/pull"
	"github.com/cairn-os/cairn/runtime/fetch/rktconfig"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/store"
	"github.com/cairn-os/cairn/runtime/trust"
)

// newTransport makes the HTTP transport for downloads, discovery and registries. Tests
// replace it with one whose dialer sends made-up domains to servers on 127.0.0.1.
var newTransport = func() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A server that accepts the connection and then says nothing must not hang rkt forever.
	tr.ResponseHeaderTimeout = 2 * time.Minute
	return tr
}

// Remote is rkt's cli.Remote.
type Remote struct{}

// Commands are fetch, trust and config.
func (Remote) Commands(env *cli.Env) []*cobra.Command {
	return []*cobra.Command{fetchCommand(env), trustCommand(env), configCommand(env)}
}

// Fetch brings ref into st by policy, as rkt fetch does.
func (Remote) Fetch(ctx context.Context, env *cli.Env, st *store.Store, policy pull.Policy, ref string) (*image.Image, error) {
	f, err := newFetcher(env, st, policy)
	if err != nil {
		return nil, err
	}
	return f.Fetch(ctx, fetch.Request{Image: ref})
}

type fetchFlags struct {
	pullPolicy     string
	full           bool
	noStore        bool
	storeOnly      bool
	signatures     []string
	allowOffDomain bool
}

func fetchCommand(env *cli.Env) *cobra.Command {
	var fl fetchFlags
	cmd := cli.RemoteCommand("fetch")
	cmd.Long = `Fetches images into the store and prints their IDs: a local .aci (checked against the
detached signature beside it, IMAGE.asc), an OCI image layout, OCI archive or docker-archive,
an https:// URL of an ACI (its signature at URL.asc), an appc name found by meta discovery
(example.com/app:v1), or docker://registry/repository:tag.

ACIs must be signed by a key trusted for their name (see rkt trust). OCI and Docker images
carry no such signature and need --insecure-options=image.`
	cmd.Args = cobra.MinimumNArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		policy, err := pullPolicy(env, fl)
		if err != nil {
			return err
		}
		if len(fl.signatures) > len(args) {
			return fmt.Errorf("%d --signature flags for %d images", len(fl.signatures), len(args))
		}
		st, err := store.Open(env.G.Dir)
		if err != nil {
			return err
		}
		st.Log = env.Log
		f, err := newFetcher(env, st, policy)
		if err != nil {
			return err
		}
		f.AllowOffDomain = fl.allowOffDomain
		for i, a := range args {
			req := fetch.Request{Image: a}
			if i < len(fl.signatures) {
				req.Signature = fl.signatures[i]
			}
			img, err := f.Fetch(env.Ctx, req)
			if err != nil {
				return err
			}
			id := img.ShortID()
			if fl.full {
				id = img.ID
			}
			fmt.Fprintln(env.Stdout, id)
		}
		return nil
	}
	fs := cmd.Flags()
	fs.StringVar(&fl.pullPolicy, "pull-policy", string(fetch.PullUpdate), "when to pull an image: new (if not in the store), update (always check), never (store only)")
	fs.BoolVar(&fl.full, "full", false, "print the full image hash after fetching")
	fs.BoolVar(&fl.noStore, "no-store", false, "fetch images ignoring the local store")
	fs.BoolVar(&fl.storeOnly, "store-only", false, "use only available images in the store (do not discover or download from remote URLs)")
	// Deprecated as in rkt, but warned about here: cobra would print its notice on stdout,
	// where scripts read the image ID.
	// MarkHidden fails only for a flag that is not defined; both are, just above.
	_ = fs.MarkHidden("no-store")
	_ = fs.MarkHidden("store-only")
	fs.StringArrayVar(&fl.signatures, "signature", nil, "local signature file (or URL) for the image in the same position")
	fs.BoolVar(&fl.allowOffDomain, "allow-off-domain", false, "accept appc discovery pages that point to another domain")
	return cmd
}

func pullPolicy(env *cli.Env, fl fetchFlags) (fetch.PullPolicy, error) {
	switch {
	case fl.noStore && fl.storeOnly:
		return "", errors.New("both --store-only and --no-store specified")
	case fl.storeOnly:
		env.Log.Warn("--store-only is deprecated, please use --pull-policy=never")
		return fetch.PullNever, nil
	case fl.noStore:
		env.Log.Warn("--no-store is deprecated, please use --pull-policy=update")
		return fetch.PullUpdate, nil
	}
	return fetch.ParsePullPolicy(fl.pullPolicy)
}

// loadConfig reads the effective rkt configuration from the system, local and user dirs.
func loadConfig(env *cli.Env) (*rktconfig.Config, error) {
	return rktconfig.Load(
		rktconfig.Dir{Path: env.G.SystemConfig},
		rktconfig.Dir{Path: env.G.LocalConfig},
		rktconfig.Dir{Path: env.G.UserConfig, User: true},
	)
}

// storeLimits are the limits on what an image may extract to, from store.d; the store's
// defaults apply where none is set, and an error for a limit says to raise it in the local
// configuration.
func storeLimits(cfg *rktconfig.Config, localConfig string) store.Limits {
	return store.Limits{
		MaxImageSize:        cfg.Store.MaxImageSize,
		MaxImageEntries:     cfg.Store.MaxImageEntries,
		MaxCompressionRatio: cfg.Store.MaxCompressionRatio,
		Origin:              cfg.Store.From,
		ConfigDir:           filepath.Join(localConfig, "store.d"),
	}
}

func trustStore(env *cli.Env) *trust.Store { return trust.New(env.G.LocalConfig, env.G.SystemConfig) }

// newFetcher wires a fetcher from the global flags and the configuration.
func newFetcher(env *cli.Env, st fetch.Store, policy fetch.PullPolicy) (*fetch.Fetcher, error) {
	ins, err := insecureopt.Parse(env.G.InsecureOptions)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return nil, err
	}
	tr := newTransport()
	if ins.Has(insecureopt.TLS) {
		tr = fetch.InsecureTransport(tr)
	}
	f := &fetch.Fetcher{
		Store:              st,
		Trust:              trustStore(env),
		HTTP:               &http.Client{Transport: tr},
		Insecure:           ins,
		PullPolicy:         policy,
		TrustKeysFromHTTPS: env.G.TrustKeysFromHTTPS,
		Header:             cfg.Header,
		RegistryAuth: func(registry string) authn.Authenticator {
			if c, ok := cfg.Docker(registry); ok {
				return authn.FromConfig(authn.AuthConfig{Username: c.User, Password: c.Password})
			}
			return authn.Anonymous
		},
		TempDir:  filepath.Join(env.G.Dir, "tmp"),
		CacheDir: filepath.Join(env.G.Dir, "remote"),
		Limits:   storeLimits(cfg, env.G.LocalConfig),
		Log:      env.Log,
	}
	if fetch.IsTerminal(env.Stderr) {
		f.Progress = env.Stderr
	}
	return f, nil
}
