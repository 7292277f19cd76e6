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
	"github.com/cairn-os/cairn/image/sysext"
)

const usage = `usage: cairn-image <command> [flags]

commands:
  build [-config FILE] -o DIR [-v]   build the disk image, qcow2, PXE pair, update payload and manifest into DIR
  boot [-pxe] [-wait-marker] DIR     boot a built image in qemu (TCG, OVMF, writes discarded) on this terminal's console
  sysext -bin DIR -o DIR [-config FILE] [-os-version V] [-crictl FILE] [-format text|json]
                                     build the kubernetes-` + sysext.KubernetesVersion + ` system extension for a Cairn version
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
		cfg, ok := loadConfig(*cfgPath, stderr)
		if !ok {
			return 1
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
	case "sysext":
		return buildSysext(ctx, args[1:], stdout, stderr)
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

func buildSysext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sysext", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "directory with kubelet, kubeadm and kubectl (tools/kube/build.sh kubelet kubeadm kubectl prints it)")
	out := fs.String("o", "", "output directory for NAME.raw and NAME.usrhash")
	cfgPath := fs.String("config", "", "the image's JSON build config: its version and SOURCE_DATE_EPOCH")
	osVersion := fs.String("os-version", "", "the Cairn VERSION_ID the extension fits (default: the config's version)")
	crictl := fs.String("crictl", "", "a crictl binary to add (optional)")
	format := fs.String("format", "text", "result on stdout: text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *bin == "" || *out == "" || fs.NArg() > 0 || (*format != "text" && *format != "json") {
		fmt.Fprint(stderr, "usage: cairn-image sysext -bin DIR -o DIR [-config FILE] [-os-version V] [-crictl FILE] [-format text|json]\n")
		return 2
	}
	cfg, ok := loadConfig(*cfgPath, stderr)
	if !ok {
		return 1
	}
	cfg = cfg.Defaults()
	if *osVersion != "" {
		cfg.Version = *osVersion
	}
	spec := sysext.Kubernetes(sysext.KubernetesVersion, cfg.Version, *bin, *crictl, cfg.SourceDateEpoch)
	img, err := (&sysext.Builder{Spec: spec, Out: *out, Progress: stderr}).Build(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-image: %v\n", err)
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	if *format == "json" {
		js, _ := json.MarshalIndent(struct {
			Name      string `json:"name"`
			OSVersion string `json:"os_version"`
			*sysext.Image
		}{spec.Name, cfg.Version, img}, "", "  ")
		fmt.Fprintln(stdout, string(js))
		return 0
	}
	fmt.Fprintf(stdout, "%s\nfor Cairn %s, %.1f MiB (erofs %.1f MiB, hash tree %.1f MiB), root hash %s in %s\n",
		img.Path, cfg.Version, mebi(img.Size), mebi(img.USRSize), mebi(img.VeritySize), img.RootHash, img.HashPath)
	return 0
}

func mebi(n int64) float64 { return float64(n) / (1 << 20) }

// loadConfig reads the build config at path ("" is the defaults), saying on stderr what is
// wrong with it.
func loadConfig(path string, stderr io.Writer) (build.Config, bool) {
	if path == "" {
		return build.Config{}, true
	}
	c, err := build.LoadConfig(path)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-image: %v\n", err)
		return build.Config{}, false
	}
	return c, true
}
