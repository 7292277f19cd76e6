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
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/image"
	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/image/qemu"
)

const usage = `usage: cairn-image <command> [flags]

commands:
  build [-config FILE] -o DIR [-v]   build the disk image, qcow2, PXE pair, update payload and manifest into DIR
  boot [-pxe] [-wait-marker] DIR     boot a built image in qemu (TCG, OVMF, writes discarded) on this terminal's console
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
	case "boot":
		return boot(ctx, args[1:], stdout, stderr)
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

func boot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pxe := fs.Bool("pxe", false, "boot the PXE pair with -kernel/-initrd instead of the disk")
	wait := fs.Bool("wait-marker", false, "stop the machine once it printed the boot marker (exit 0), or fail after 10 minutes")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprint(stderr, "usage: cairn-image boot [-pxe] [-wait-marker] DIR\n")
		return 2
	}
	dir := fs.Arg(0)
	vars, err := os.MkdirTemp("", "cairn-boot-")
	if err != nil {
		fmt.Fprintf(stderr, "cairn-image: %v\n", err)
		return 1
	}
	defer os.RemoveAll(vars)
	m := qemu.Machine{Disk: filepath.Join(dir, build.DiskImage), Snapshot: true, VarsDir: vars}
	if *pxe {
		m = qemu.Machine{Kernel: filepath.Join(dir, build.PXEKernel), Initrd: filepath.Join(dir, build.PXEInitrd),
			Append: "console=ttyS0,115200n8", MemoryMB: 2048}
	}
	if !*wait {
		// Interactive: qemu owns the terminal (Ctrl-A X quits).
		if err := qemu.Run(ctx, m, vars); err != nil {
			fmt.Fprintf(stderr, "cairn-image: %v\n", err)
			return 1
		}
		return 0
	}
	vm, err := qemu.Start(ctx, m, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-image: %v\n", err)
		return 1
	}
	defer vm.Stop()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	_, took, err := vm.WaitFor(wctx, "CAIRN-BOOTED")
	if err != nil {
		fmt.Fprintf(stderr, "\ncairn-image: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "\ncairn-image: booted to the marker in %v\n", took.Round(100*time.Millisecond))
	return 0
}
