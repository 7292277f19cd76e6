package cli

import (
	"bytes"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/pod"
)

func init() {
	register(func(env *Env) *cobra.Command {
		var pretty bool
		var uuidFile string
		c := &cobra.Command{
			Use:   "cat-manifest --uuid-file=FILE | UUID",
			Short: "Print a pod's appc pod manifest",
			RunE: func(_ *cobra.Command, args []string) error {
				ref, err := podRef(args, uuidFile)
				if err != nil {
					return err
				}
				p, err := pod.NewStore(env.G.Dir).Get(ref)
				if err != nil {
					return err
				}
				b, err := p.ReadManifestBytes()
				if err != nil {
					return err
				}
				if pretty {
					var out bytes.Buffer
					if err := json.Indent(&out, b, "", "\t"); err != nil {
						return err
					}
					b = out.Bytes()
				}
				b = append(b, '\n')
				_, err = env.Stdout.Write(b)
				return err
			},
		}
		c.Flags().BoolVar(&pretty, "pretty-print", true, "indent the manifest")
		c.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file instead of an argument")
		return c
	})
}
