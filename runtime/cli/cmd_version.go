package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Version is set at link time (-X github.com/cairn-os/cairn/runtime/cli.Version=...).
var Version = "0.1.0-dev"

// AppcVersion is the appc spec version whose images and pod manifests rkt handles.
const AppcVersion = "0.8.11"

func init() {
	register(func(env *Env) *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print the version and exit",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				fmt.Fprintf(env.Stdout, "rkt Version: %s\nappc Version: %s\nGo Version: %s\nGo OS/Arch: %s/%s\nFeatures: -TPM +SDJOURNAL\n",
					Version, AppcVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return nil
			},
		}
	})
}
