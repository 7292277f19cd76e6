package stage0

import (
	"errors"
	"fmt"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// Changes are rkt run-prepared's flags: each one set replaces what the pod was prepared with.
type Changes struct {
	Net          []string // nil: as prepared
	Hostname     *string
	DNS          []string
	DNSSearch    []string
	DNSOpt       []string
	DNSDomain    *string
	HostsEntries []string
	Interactive  *bool
}

// LockPrepared locks a prepared pod for rkt run-prepared and applies ch to it, checked as
// Prepare checks them, the networks named and the host's cgroups included. A pod whose changes are refused stays
// prepared, unchanged, for another try.
func (h *Host) LockPrepared(uuid string, ch *Changes) (*pod.Pod, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
	p, err := h.Pods.LockPrepared(uuid)
	if err != nil {
		return nil, err
	}
	if err := h.change(p, ch); err != nil {
		p.Close()
		return nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	return p, nil
}

func (h *Host) change(p *pod.Pod, ch *Changes) error {
	if ch == nil {
		return nil
	}
	opts, err := stage1.ReadOptions(p.Path())
	if err != nil {
		return err
	}
	if ch.Net != nil {
		n := Network{Net: ch.Net}
		if err := n.Validate(); err != nil {
			return err
		}
		if err := checkNetworks(opts.NetConfDirs, ch.Net); err != nil {
			return err
		}
		opts.Net = n.netOption()
	}
	set := func(dst *[]string, v []string) {
		if v != nil {
			*dst = v
		}
	}
	set(&opts.DNS, ch.DNS)
	set(&opts.DNSSearch, ch.DNSSearch)
	set(&opts.DNSOpt, ch.DNSOpt)
	set(&opts.HostsEntries, ch.HostsEntries)
	if ch.Hostname != nil {
		opts.Hostname = *ch.Hostname
	}
	if ch.DNSDomain != nil {
		opts.DNSDomain = *ch.DNSDomain
	}
	n := Network{DNS: opts.DNS, DNSSearch: opts.DNSSearch, DNSOpt: opts.DNSOpt, DNSDomain: opts.DNSDomain}
	if err := n.Validate(); err != nil {
		return err
	}
	if ch.Interactive != nil {
		opts.Interactive = *ch.Interactive
		if opts.Interactive && len(opts.Apps) != 1 {
			return errors.New("--interactive needs a pod of exactly one app")
		}
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	return opts.Write(p.Path())
}
