package remote

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/cli"
)

func configCommand(env *cli.Env) *cobra.Command {
	var pretty bool
	cmd := cli.RemoteCommand("config")
	cmd.Long = `Prints the effective configuration read from the system (--system-config, /usr/lib/rkt),
local (--local-config, /etc/rkt) and user (--user-config) directories: auth.d (kinds auth and
dockerAuth), paths.d and stage1.d, in rkt's config.json format, and store.d (kind store, the
limits on what an image may extract to: maxImageSize, maxImageEntries, maxCompressionRatio).`
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(env)
		if err != nil {
			return err
		}
		if f := cmd.Flag("dir"); f != nil && f.Changed {
			cfg.Paths.Data = env.G.Dir
		}
		var out []byte
		if pretty {
			out, err = json.MarshalIndent(cfg.Stage0(), "", "\t")
		} else {
			out, err = json.Marshal(cfg.Stage0())
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, string(out))
		return nil
	}
	cmd.Flags().BoolVar(&pretty, "pretty-print", true, "apply indent to format the output")
	return cmd
}
