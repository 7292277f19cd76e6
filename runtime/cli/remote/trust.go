package remote

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/cli"
	"github.com/cairn-os/cairn/runtime/fetch"
	"github.com/cairn-os/cairn/runtime/trust"
)

func trustCommand(env *cli.Env) *cobra.Command {
	var (
		prefix                      string
		root, skipReview, allowHTTP bool
	)
	cmd := cli.RemoteCommand("trust")
	cmd.Long = `Adds OpenPGP public keys (armored files or https URLs) to the trust store: for images named
PREFIX or below it (--prefix, stored in <local-config>/trustedkeys/prefix.d/PREFIX/), or for
every image (--root, in trustedkeys/root.d/). With --prefix and no key, the keys that PREFIX's
publisher announces through appc discovery (ac-discovery-pubkeys) are fetched.
Each key's fingerprint is shown and must be confirmed unless --skip-fingerprint-review.`
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case root && prefix != "":
			return errors.New("--root and --prefix are mutually exclusive")
		case !root && prefix == "":
			return errors.New("--prefix required (or --root to trust keys for every image)")
		case root && len(args) == 0:
			return errors.New("--root needs at least one key file or URL")
		}
		if !root {
			if err := trust.CheckPrefix(prefix); err != nil {
				return err
			}
		}
		f, err := newFetcher(env, nil, fetch.PullUpdate)
		if err != nil {
			return err
		}
		var keys []*fetch.AnnouncedKey
		if len(args) == 0 {
			if keys, err = f.DiscoverKeys(env.Ctx, prefix, allowHTTP); err != nil {
				return err
			}
		}
		for _, a := range args {
			k, err := f.FetchKey(env.Ctx, a, allowHTTP)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		ts := f.Trust
		in := bufio.NewReader(env.Stdin)
		for _, k := range keys {
			if err := reviewKey(env, in, k, prefix, root, skipReview); err != nil {
				return err
			}
			var path string
			if root {
				path, err = ts.AddRootKey(k.Key)
			} else {
				path, err = ts.AddPrefixKey(prefix, k.Key)
			}
			if err != nil {
				return err
			}
			if root {
				fmt.Fprintf(env.Stdout, "Added root key at %q\n", path)
			} else {
				fmt.Fprintf(env.Stdout, "Added key for prefix %q at %q\n", prefix, path)
			}
		}
		return nil
	}
	fs := cmd.Flags()
	fs.StringVar(&prefix, "prefix", "", "image name prefix the keys are trusted for")
	fs.BoolVar(&root, "root", false, "add keys to the root (every image) keyring")
	fs.BoolVar(&skipReview, "skip-fingerprint-review", false, "accept keys without reviewing their fingerprints")
	fs.BoolVar(&allowHTTP, "insecure-allow-http", false, "allow fetching keys over plain http")
	return cmd
}

// reviewKey shows a key and asks the user to confirm it; a key that is revoked or expired
// is refused outright.
func reviewKey(env *cli.Env, in *bufio.Reader, k *fetch.AnnouncedKey, prefix string, root, skip bool) error {
	now := time.Now()
	if k.Key.Revoked(now) {
		return fmt.Errorf("key %s from %s is %w", k.Key.Fingerprint, k.Location, trust.ErrRevoked)
	}
	if k.Key.Expired(now) {
		return fmt.Errorf("key %s from %s has %w", k.Key.Fingerprint, k.Location, trust.ErrExpired)
	}
	if root {
		fmt.Fprintln(env.Stderr, "Root key (trusted for every image)")
	} else {
		fmt.Fprintf(env.Stderr, "Prefix: %q\n", prefix)
	}
	fmt.Fprintf(env.Stderr, "Key: %q\nGPG key fingerprint is: %s\n", k.Location, k.Key.GroupedFingerprint())
	for _, id := range k.Key.UserIDs() {
		fmt.Fprintf(env.Stderr, "\t%s\n", id)
	}
	// As rkt said it: for prefix "P", or for every image with --root.
	what := fmt.Sprintf("for prefix %q", prefix)
	if root {
		what = "for every image"
	}
	if skip {
		fmt.Fprintf(env.Stderr, "Trusting %q %s without fingerprint review.\n", k.Location, what)
		return nil
	}
	fmt.Fprint(env.Stderr, "Are you sure you want to trust this key (yes/no)?\n")
	line, _ := in.ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "yes", "y":
		fmt.Fprintf(env.Stderr, "Trusting %q %s after fingerprint review.\n", k.Location, what)
		return nil
	}
	return fmt.Errorf("key %s from %s not trusted: not confirmed (answer yes, or use --skip-fingerprint-review)", k.Key.Fingerprint, k.Location)
}
