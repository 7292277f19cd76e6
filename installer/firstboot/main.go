package firstboot

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// Main is cairn-firstboot's command line: --root (the new system, default /sysroot),
// --config (repeatable: where to look, default DefaultSources), --marker.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cairn-firstboot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	r := &Runner{Log: slog.New(slog.NewTextHandler(stderr, nil))}
	fs.StringVar(&r.Root, "root", "/sysroot", "the new system's root `DIR`")
	fs.StringVar(&r.Marker, "marker", DefaultMarker, "`PATH` inside the root that records the first boot")
	fs.Func("config", "look for the config at `PATH` (repeatable; default: the OEM partition, then qemu fw_cfg)", func(s string) error {
		r.Sources = append(r.Sources, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(r.Sources) == 0 {
		r.Sources = DefaultSources
	}
	applied, err := r.Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-firstboot: %v\n", err)
		return 1
	}
	if applied {
		fmt.Fprintln(stdout, "cairn-firstboot: first-boot config applied")
	}
	return 0
}
