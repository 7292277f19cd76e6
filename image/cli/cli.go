// Package cli is the cairn-image command line: it parses flags, sets up logging and calls
// image/build.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-os/cairn/image"
	"github.com/cairn-os/cairn/image/build"
)

const usage = `usage: cairn-image <command> [flags]

commands:
  build [-config FILE] -o DIR [-v]   build the disk image, qcow2, PXE pair, update payload and manifest into DIR
  packages                           list the Debian packages of /usr and why each is there
  config                             print the effective default config as JSON (a starting point for -config)
`

// Run runs cairn-image with args (without the program name). It returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "build":
		fs := flag.NewFlagSet("build", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfgPath := fs.String("config", "", "JSON build config (fields as `cairn-image config` prints)")
		out := fs.String("o", "", "output directory (must not exist or be empty)")
		verbose := fs.Bool("v", false, "show the tools' output too")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *out == "" || fs.NArg() > 0 {
			fmt.Fprint(stderr, "cairn-image build: -o DIR is required\n")
			return 2
		}
		var cfg build.Config
		if *cfgPath != "" {
			c, err := build.LoadConfig(*cfgPath)
			if err != nil {
				fmt.Fprintf(stderr, "cairn-image: %v\n", err)
				return 1
			}
			cfg = c
		}
		b := &build.Builder{Config: cfg, Out: *out, Progress: stderr, Verbose: *verbose}
		if err := b.Run(ctx); err != nil {
			fmt.Fprintf(stderr, "cairn-image: build failed: %v\n", err)
			if errors.Is(err, context.Canceled) {
				return 130
			}
			return 1
		}
		fmt.Fprintln(stdout, *out)
		return 0
	case "packages":
		for _, p := range image.DefaultPackages() {
			fmt.Fprintf(stdout, "%-28s %s\n", p.Name, p.Reason)
		}
		return 0
	case "config":
		js, _ := json.MarshalIndent(build.Config{}.Defaults(), "", "  ")
		fmt.Fprintln(stdout, string(js))
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "cairn-image: unknown command %q\n%s", args[0], strings.TrimSpace(usage)+"\n")
	return 2
}
