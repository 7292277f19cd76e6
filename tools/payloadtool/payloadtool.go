// Package payloadtool is the cairn-payload command: it makes signing keys and builds, signs,
// verifies and inspects Cairn update payloads (update-engine/PAYLOAD.md).
package payloadtool

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/update-engine/payload"
)

const usage = `usage: cairn-payload COMMAND [flags]

commands:
  keygen  -out PREFIX                 write PREFIX.key.pem (private) and PREFIX.pub.pem (public)
  sign    -key K -version V -board B -usr FILE -uki FILE [-min-source-version V]
          [-extension NAME.raw ... -extension-url BASE] -o OUT
                                      build and sign a payload (naming system extension images
                                      built for V, served at BASE/NAME.raw: format 2)
  verify  -pub KEY|DIR FILE           check signature and every hash; exit 1 if anything is wrong
  inspect [-format=json] FILE         print the manifest (unverified)
`

// Run runs cairn-payload with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"keygen": keygen, "sign": sign, "verify": verify, "inspect": inspect,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "cairn-payload: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err := cmd(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "cairn-payload %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cairn-payload "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func keygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", stderr)
	out := fs.String("out", "", "path prefix of the key files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	priv, pub, err := payload.GenerateKey()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out+".key.pem", priv, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out+".pub.pem", pub, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s.key.pem\n%s.pub.pem\n", *out, *out)
	return nil
}

func sign(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sign", stderr)
	key := fs.String("key", "", "private key (PEM)")
	version := fs.String("version", "", "version of the payload's OS")
	board := fs.String("board", "amd64-usr", "board the payload is for")
	minSrc := fs.String("min-source-version", "", "oldest running version allowed to apply it")
	usr := fs.String("usr", "", "the /usr filesystem image")
	uki := fs.String("uki", "", "the unified kernel image")
	out := fs.String("o", "", "output payload file")
	var exts []string
	fs.Func("extension", "a system extension image (NAME.raw with NAME.usrhash beside it) built for -version; repeatable", func(v string) error {
		exts = append(exts, v)
		return nil
	})
	extURL := fs.String("extension-url", "", "URL of the directory the extension images are served from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || *version == "" || *usr == "" || *uki == "" || *out == "" {
		return errors.New("-key, -version, -usr, -uki and -o are required")
	}
	if len(exts) > 0 && *extURL == "" {
		return errors.New("-extension needs -extension-url, where hosts fetch the images")
	}
	var described []payload.Extension
	for _, path := range exts {
		e, err := payload.DescribeExtension(path)
		if err != nil {
			return err
		}
		e.URL = strings.TrimSuffix(*extURL, "/") + "/" + e.Name + ".raw"
		described = append(described, e)
	}
	kb, err := os.ReadFile(*key)
	if err != nil {
		return err
	}
	priv, err := payload.ParsePrivateKey(kb)
	if err != nil {
		return fmt.Errorf("key %s: %w", *key, err)
	}
	var m *payload.Manifest
	err = atomicfile.Write(*out, 0o644, func(w io.Writer) error {
		m, err = payload.Build(w, payload.BuildOptions{
			Version: *version, Board: *board, MinSourceVersion: *minSrc,
			USR: payload.FileSource(payload.PartUSR, *usr), UKI: payload.FileSource(payload.PartUKI, *uki),
			Extensions: described,
		}, priv)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: version %s board %s\n", *out, m.Version, m.Board)
	return nil
}

func verify(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	pub := fs.String("pub", "", "public key file, or directory of *.pem")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pub == "" || fs.NArg() != 1 {
		return errors.New("want -pub KEY and one payload file")
	}
	keys, err := payload.LoadPublicKeys(*pub)
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h, err := payload.VerifyAll(f, st.Size(), keys)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "%s: OK (version %s, board %s)\n", fs.Arg(0), h.Manifest.Version, h.Manifest.Board)
	return nil
}

func inspect(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", stderr)
	format := fs.String("format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one payload file")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := payload.ReadHeader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(h.Manifest)
	}
	m := h.Manifest
	fmt.Fprintf(stdout, "version:            %s\nboard:              %s\nmin source version: %s\nsignature:          not checked (use verify)\n", m.Version, m.Board, m.MinSourceVersion)
	for _, p := range m.Parts {
		fmt.Fprintf(stdout, "part %-4s offset %d compressed %d size %d sha256 %s\n", p.Name, p.Offset, p.CompressedSize, p.Size, p.SHA256)
	}
	for _, e := range m.Extensions {
		fmt.Fprintf(stdout, "extension %s size %d sha256 %s usrhash %s url %s\n", e.Name, e.Size, e.SHA256, e.USRHash, e.URL)
	}
	return nil
}
