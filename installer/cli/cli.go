// Package cli is cairn-install's command line: flatcar-install's flags where they fit, plus
// `validate` (Ignition's own report on a first-boot config) and `sign` (image signatures, for
// release tooling).
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/cairn-os/cairn/installer/firstboot"
	"github.com/cairn-os/cairn/installer/imagesig"
	"github.com/cairn-os/cairn/installer/install"
	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// DefaultKeys is where a Cairn system keeps the keys its images and payloads are signed with.
const DefaultKeys = "/usr/share/cairn/signing-keys"

// Run executes cairn-install with args (without the program name) and returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "validate":
			return validate(args[1:], stdout, stderr)
		case "sign":
			return sign(args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("cairn-install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o install.Options
	var ign, keys string
	fs.StringVar(&o.Device, "d", "", "install to this block `DEVICE` (required)")
	fs.StringVar(&ign, "i", "", "first-boot Ignition config `FILE` to put on the OEM partition")
	fs.StringVar(&o.Image, "f", "", "install this local image `FILE` (.bin or .bin.zst; its .sig beside it)")
	fs.StringVar(&o.BaseURL, "b", "", "download the image from this base `URL` (with -V)")
	fs.StringVar(&o.Version, "V", "", "the `VERSION` to download with -b")
	fs.StringVar(&o.OEM, "o", "", "OEM `ID` to record on the OEM partition")
	fs.StringVar(&keys, "k", DefaultKeys, "image signing public key(s): a PEM `FILE` or a directory of them")
	fs.BoolVar(&o.Force, "force", false, "install even if the disk or one of its partitions is mounted")
	verbose := fs.Bool("v", false, "log every step")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cairn-install -d DEVICE [-i ignition.json] [-f IMAGE | -b BASEURL -V VERSION] [-o OEM] [-k KEYS]\n"+
			"       cairn-install validate CONFIG\n       cairn-install sign -key PRIVATE.pem IMAGE\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Device == "" || fs.NArg() != 0 || (o.Image == "") == (o.BaseURL == "") {
		fs.Usage()
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.Progress = stderr
	var err error
	if o.Keys, err = payload.LoadPublicKeys(keys); err != nil {
		fmt.Fprintf(stderr, "cairn-install: signing keys %s: %v\n", keys, err)
		return 1
	}
	if ign != "" {
		// The config is checked whole before the disk is touched.
		if o.Ignition, err = os.ReadFile(ign); err != nil {
			fmt.Fprintf(stderr, "cairn-install: %v\n", err)
			return 1
		}
		cfg, rpt, err := firstboot.Parse(o.Ignition)
		if err == nil {
			_, err = firstboot.MakePlan(cfg)
		}
		if err != nil {
			fmt.Fprintf(stderr, "cairn-install: %s: %v\n%s", ign, err, rpt.String())
			return 1
		}
	}
	if err := install.Install(ctx, o); err != nil {
		fmt.Fprintf(stderr, "cairn-install: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Success! Cairn is installed on %s\n", o.Device)
	return 0
}

// validate prints Ignition's own report and Cairn's verdict on a first-boot config.
func validate(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: cairn-install validate CONFIG")
		return 2
	}
	raw, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "cairn-install: %v\n", err)
		return 1
	}
	cfg, rpt, err := firstboot.Parse(raw)
	if s := rpt.String(); s != "" {
		fmt.Fprint(stdout, s)
	}
	if err == nil {
		_, err = firstboot.MakePlan(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", args[0], err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid Ignition config, and Cairn can apply all of it\n", args[0])
	return 0
}

// sign writes IMAGE.sig for a disk image.
func sign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cairn-install sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "ed25519 private key `FILE` (PEM, from cairn-payload keygen)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *keyPath == "" {
		fmt.Fprintln(stderr, "usage: cairn-install sign -key PRIVATE.pem IMAGE")
		return 2
	}
	img := fs.Arg(0)
	kb, err := os.ReadFile(*keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-install: %v\n", err)
		return 1
	}
	key, err := payload.ParsePrivateKey(kb)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-install: %s: %v\n", *keyPath, err)
		return 1
	}
	f, err := os.Open(img)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-install: %v\n", err)
		return 1
	}
	st, err := imagesig.Of(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "cairn-install: %s: %v\n", img, err)
		return 1
	}
	if err := atomicfile.WriteFile(img+".sig", imagesig.Sign(key, st), 0o644); err != nil {
		fmt.Fprintf(stderr, "cairn-install: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s.sig: %d bytes, sha512 %x\n", img, st.Size, st.SHA512)
	return 0
}
