package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
)

// rktTimeLayout is how rkt writes an absolute time (rkt list --full, rkt status).
const rktTimeLayout = "2006-01-02 15:04:05.999 -0700 MST"

// listFormat is how rkt list writes its table.
type listFormat struct {
	Full     bool // full UUIDs, image IDs, absolute times
	NoLegend bool
	Now      time.Time      // relative times are counted to it
	Loc      *time.Location // absolute times are shown in it
}

// fmtTime is a time as rkt list shows it: "41 seconds ago" (humanize's wording, as rkt's),
// or with Full the absolute time; nothing for a time that is not known.
func (f listFormat) fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if f.Full {
		return t.In(f.Loc).Format(rktTimeLayout)
	}
	return humanize.RelTime(t, f.Now, "ago", "from now")
}

// writePodTable writes rkt list's table: one line per app, the pod's own columns on its
// first app's line only; a pod without apps gets one line with "-" for them.
func writePodTable(w io.Writer, pods []podInfo, f listFormat) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, '\t', 0)
	if !f.NoLegend {
		if f.Full {
			fmt.Fprint(tw, "UUID\tAPP\tIMAGE NAME\tIMAGE ID\tSTATE\tCREATED\tSTARTED\tNETWORKS\n")
		} else {
			fmt.Fprint(tw, "UUID\tAPP\tIMAGE NAME\tSTATE\tCREATED\tSTARTED\tNETWORKS\n")
		}
	}
	for _, pi := range pods {
		uuid, state, nets := pi.UUID, string(pi.State), fmtNets(pi.Nets)
		created, started := f.fmtTime(pi.Created), f.fmtTime(pi.Started)
		if !f.Full && len(uuid) > 8 {
			uuid = uuid[:8]
		}
		apps := pi.Apps
		if len(apps) == 0 {
			apps = []podApp{{Name: "-", ImageName: "-", ImageID: "-"}}
		}
		for _, a := range apps {
			if f.Full {
				id := a.ImageID
				if len(id) > 19 { // sha512-0123456789ab, as rkt shortens it
					id = id[:19]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", uuid, a.Name, a.ImageName, id, state, created, started, nets)
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", uuid, a.Name, a.ImageName, state, created, started, nets)
			}
			// The pod's columns describe the pod, not its other apps.
			uuid, state, nets, created, started = "", "", "", "", ""
		}
	}
	return tw.Flush()
}

func init() {
	register(func(env *Env) *cobra.Command {
		var full, noLegend bool
		var format string
		c := &cobra.Command{
			Use:   "list",
			Short: "List pods",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				if err := checkFormat(format); err != nil {
					return err
				}
				pods, err := podStore(env).List()
				if err != nil {
					return err
				}
				infos := make([]podInfo, 0, len(pods))
				for _, p := range pods {
					infos = append(infos, readPod(p))
				}
				if format != "" {
					out := make([]podJSON, 0, len(infos))
					for i := range infos {
						out = append(out, infos[i].json())
					}
					return writeJSON(env.Stdout, out, format == "json-pretty")
				}
				return writePodTable(env.Stdout, infos, listFormat{Full: full, NoLegend: noLegend, Now: time.Now(), Loc: time.Local})
			},
		}
		c.Flags().BoolVar(&full, "full", false, "use long output format: full UUIDs, image IDs and absolute times")
		c.Flags().BoolVar(&noLegend, "no-legend", false, "suppress a legend with the list")
		c.Flags().StringVar(&format, "format", "", "choose the output format: json, json-pretty")
		return c
	})
}

// checkFormat accepts rkt's --format values: "" (text), json, json-pretty.
func checkFormat(format string) error {
	switch format {
	case "", "json", "json-pretty":
		return nil
	}
	return fmt.Errorf("--format=%s: want json or json-pretty (or no --format for text)", format)
}
