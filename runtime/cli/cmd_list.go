package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// podInfo is a pod as rkt list and rkt status report it (--format=json).
type podInfo struct {
	UUID      string    `json:"name"`
	State     pod.State `json:"state"`
	Networks  []string  `json:"networks"`
	AppNames  []string  `json:"app_names"`
	Apps      []appInfo `json:"apps,omitempty"`
	PID       int       `json:"pid,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"` // the first app's, once the pod exited
	CreatedAt int64     `json:"created_at,omitempty"`
	StartedAt int64     `json:"started_at,omitempty"`
	created   time.Time
	started   time.Time
}

type appInfo struct {
	Name       string `json:"name"`
	Image      string `json:"image"`
	ImageID    string `json:"image_id"`
	State      string `json:"state"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	Signal     string `json:"signal,omitempty"`
	FinishedAt int64  `json:"finished_at,omitempty"`
}

func describePod(p *pod.Pod) podInfo {
	pi := podInfo{UUID: p.UUID, State: p.State(), Networks: []string{}, AppNames: []string{}}
	pi.created = p.Time(pod.CreatedFile)
	pi.started = p.Time(pod.StartedFile)
	if !pi.created.IsZero() {
		pi.CreatedAt = pi.created.UnixNano()
	}
	if !pi.started.IsZero() {
		pi.StartedAt = pi.started.UnixNano()
	}
	if pi.State == pod.Running {
		pi.PID, _ = p.PID()
	}
	if st, err := network.LoadState(filepath.Join(p.Path(), stage1.NetStateFile)); err == nil {
		for _, a := range st.Nets {
			for _, ip := range a.IPs {
				kind := "ip4"
				if strings.Contains(ip, ":") {
					kind = "ip6"
				}
				addr, _, _ := strings.Cut(ip, "/")
				pi.Networks = append(pi.Networks, fmt.Sprintf("%s:%s=%s", a.Name, kind, addr))
			}
		}
	}
	m, err := p.Manifest()
	if err != nil {
		return pi
	}
	for i, ra := range m.Apps {
		ai := appInfo{Name: string(ra.Name), ImageID: ra.Image.ID.String()}
		if id, ok := ra.Annotations.Get("cairn-os.org/image-id"); ok {
			ai.ImageID = id
		}
		if ra.Image.Name != nil {
			ai.Image = ra.Image.Name.String()
		}
		switch pi.State {
		case pod.Prepared, pod.Preparing, pod.AbortedPrepare:
			ai.State = "prepared"
		default:
			if e, ok, _ := p.Exit(ai.Name); ok {
				code := e.ExitCode
				ai.ExitCode, ai.Signal, ai.State = &code, e.Signal, "exited"
				ai.FinishedAt = e.FinishedAt.UnixNano()
				if i == 0 && pi.State != pod.Running {
					pi.ExitCode = &code
				}
			} else if pi.State == pod.Running {
				ai.State = "running"
			} else {
				ai.State = "unknown"
			}
		}
		pi.AppNames = append(pi.AppNames, ai.Name)
		pi.Apps = append(pi.Apps, ai)
	}
	return pi
}

func fmtTime(t time.Time, full bool) string {
	if t.IsZero() {
		return ""
	}
	if full {
		return t.Local().Format("2006-01-02 15:04:05.000 -0700 MST")
	}
	d := time.Since(t).Round(time.Second)
	return d.String() + " ago"
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
				pods, err := pod.NewStore(env.G.Dir).List()
				if err != nil {
					return err
				}
				infos := make([]podInfo, 0, len(pods))
				for _, p := range pods {
					infos = append(infos, describePod(p))
				}
				switch format {
				case "json":
					return json.NewEncoder(env.Stdout).Encode(infos)
				case "", "tab":
				default:
					return fmt.Errorf("--format=%s: want json or tab", format)
				}
				tw := tabwriter.NewWriter(env.Stdout, 0, 8, 1, '\t', 0)
				if !noLegend {
					fmt.Fprintln(tw, "UUID\tAPP\tIMAGE NAME\tSTATE\tNETWORKS\tCREATED\tSTARTED")
				}
				for _, pi := range infos {
					id := pi.UUID
					if !full {
						id = id[:8]
					}
					if len(pi.Apps) == 0 {
						fmt.Fprintf(tw, "%s\t-\t-\t%s\t\t%s\t%s\n", id, pi.State, fmtTime(pi.created, full), fmtTime(pi.started, full))
					}
					for i, a := range pi.Apps {
						if i == 0 {
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, a.Name, a.Image, pi.State,
								strings.Join(pi.Networks, ","), fmtTime(pi.created, full), fmtTime(pi.started, full))
						} else {
							fmt.Fprintf(tw, "\t%s\t%s\t\t\t\t\n", a.Name, a.Image)
						}
					}
				}
				return tw.Flush()
			},
		}
		c.Flags().BoolVar(&full, "full", false, "full UUIDs and absolute times")
		c.Flags().BoolVar(&noLegend, "no-legend", false, "omit the header line")
		c.Flags().StringVar(&format, "format", "", "output format: json")
		return c
	})
}
