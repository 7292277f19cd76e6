package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/console/cluster"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

// view is a page: the path it answers, its template, the role it wants, what it reads, and
// which of its parts change live (fragment templates whose root element has their name as
// id).
type view struct {
	pattern string
	page    string
	role    string
	live    bool
	frags   []string
	load    func(r *http.Request, p *Page) error
}

func (u *UI) viewList() []*view {
	return []*view{
		{pattern: "/apps", page: "apps", load: u.loadApps},
		{pattern: "/apps/{app}", page: "overview", live: true,
			frags: []string{"ov-halts", "ov-tiles", "ov-versions", "ov-statuses", "ov-groups", "ov-activity", "ov-cluster"}, load: u.loadOverview},
		{pattern: "/apps/{app}/groups", page: "groups", live: true, frags: []string{"gl-groups"}, load: u.loadGroups},
		{pattern: "/apps/{app}/groups/{group}", page: "group", live: true,
			frags: []string{"g-banner", "g-head", "g-versions", "g-statuses", "g-machines", "g-failures", "g-activity"}, load: u.loadGroup},
		{pattern: "/apps/{app}/packages", page: "packages", live: true, frags: []string{"p-packages", "p-channels"}, load: u.loadPackages},
		{pattern: "/apps/{app}/instances", page: "instances", live: true, frags: []string{"il-table"}, load: u.loadInstances},
		{pattern: "/apps/{app}/instances/{instance}", page: "instance", live: true,
			frags: []string{"i-head", "i-details", "i-cluster", "i-pods", "i-history", "i-events"}, load: u.loadInstance},
		{pattern: "/cluster", page: "cluster", live: true, frags: []string{"c-locks", "c-leases", "c-nodes"}, load: u.loadCluster},
		{pattern: "/activity", page: "activity", live: true, frags: []string{"a-list"}, load: u.loadActivity},
		{pattern: "/admin", page: "admin", role: store.RoleAdmin, load: u.loadAdmin},
	}
}

// servePage answers a page's GET.
func (u *UI) servePage(v *view) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := u.begin(w, r, v.role)
		if p == nil {
			return
		}
		if err := v.load(r, p); err != nil {
			u.fail(w, r, p, err)
			return
		}
		frags, err := u.renderFrags(v, p)
		if err != nil {
			u.fail(w, r, p, err)
			return
		}
		p.Frags = frags
		if v.live {
			p.Live = liveURL(p.Path, frags)
		}
		u.render(w, http.StatusOK, v.page, p)
	})
}

// app reads the application the path names into p.
func (u *UI) app(r *http.Request, p *Page) error {
	a, err := u.Store.App(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	p.App = a
	return nil
}

func appURL(a *store.App) string { return "/apps/" + url.PathEscape(appRef(a)) }

// GroupRow is a group with its counts and its rollout's state.
type GroupRow struct {
	Group *store.Group
	Sum   *store.GroupSummary
	State GroupState
	// Progress is the group's machines by status, for its row's bar.
	Progress Chart
	URL      string
}

func (u *UI) groupRows(a *store.App, groups []*store.Group, sum *store.Summary) []*GroupRow {
	byID := map[string]*store.GroupSummary{}
	for _, gs := range sum.Groups {
		byID[gs.ID] = gs
	}
	var rows []*GroupRow
	for _, g := range groups {
		gs := byID[g.ID]
		if gs == nil {
			gs = &store.GroupSummary{ID: g.ID, Name: g.Name}
		}
		gURL := appURL(a) + "/groups/" + url.PathEscape(g.ID)
		rows = append(rows, &GroupRow{Group: g, Sum: gs, State: StateOf(g, gs), URL: gURL,
			Progress: StatusChart(g.Name+" by status", gs.Statuses, func(string) string { return "" })})
	}
	return rows
}

// instancesURL lists an application's instances with a filter.
func instancesURL(a *store.App, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	s := appURL(a) + "/instances"
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// OverviewData is the overview: the fleet of one application at a glance.
type OverviewData struct {
	Summary  *store.Summary
	Rows     []*GroupRow
	Halted   []*GroupRow
	Versions Chart
	Statuses Chart
	Activity []*store.Activity
	// Updating: updates in flight; Failed: machines whose last update failed or timed out;
	// Current: machines on their group's target.
	Updating, Failed, Current, Grouped int
	Holders                            []cluster.Holder
	// Names are the machines that hold a reboot lock, by machine id.
	Names map[string]*MachineRef
}

func (u *UI) loadOverview(r *http.Request, p *Page) error {
	if err := u.app(r, p); err != nil {
		return err
	}
	ctx := r.Context()
	sum, err := u.Store.Summary(ctx, p.App.ID)
	if err != nil {
		return err
	}
	groups, err := u.Store.Groups(ctx, p.App.ID)
	if err != nil {
		return err
	}
	act, err := u.Store.ActivityLog(ctx, store.ActivityFilter{AppID: p.App.ID, Limit: 8})
	if err != nil {
		return err
	}
	d := &OverviewData{Summary: sum, Rows: u.groupRows(p.App, groups, sum), Activity: act, Holders: p.Cluster.Holders(), Names: map[string]*MachineRef{}}
	for _, h := range d.Holders {
		if in, err := u.Store.Instance(ctx, p.App.ID, h.ID); err == nil {
			d.Names[h.ID] = &MachineRef{Name: MachineName(in), URL: appURL(p.App) + "/instances/" + url.PathEscape(in.ID)}
		}
	}
	colors := VersionColors(sum.Versions)
	d.Versions = VersionChart("Versions", sum.Versions, colors, "", func(k string) string { return instancesURL(p.App, "version", k) })
	d.Statuses = StatusChart("Update status", sum.Statuses, func(k string) string { return instancesURL(p.App, "status", k) })
	for _, row := range d.Rows {
		d.Updating += row.Sum.InFlight
		d.Current += row.Sum.OnTarget
		d.Grouped += row.Sum.Instances
		if row.State.Key == "halted" {
			d.Halted = append(d.Halted, row)
		}
	}
	for _, s := range sum.Statuses {
		if s.Key == string(rollout.StatusError) || s.Key == string(rollout.StatusTimedOut) {
			d.Failed += s.N
		}
	}
	p.Title, p.Section, p.Data = p.App.Name+" — overview", "overview", d
	return nil
}

// GroupsData lists an application's groups.
type GroupsData struct {
	Rows     []*GroupRow
	Channels []*store.Channel
	Default  rollout.Policy
}

func (u *UI) loadGroups(r *http.Request, p *Page) error {
	if err := u.app(r, p); err != nil {
		return err
	}
	ctx := r.Context()
	sum, err := u.Store.Summary(ctx, p.App.ID)
	if err != nil {
		return err
	}
	groups, err := u.Store.Groups(ctx, p.App.ID)
	if err != nil {
		return err
	}
	chs, err := u.Store.Channels(ctx, p.App.ID)
	if err != nil {
		return err
	}
	p.Title, p.Section = "Groups — "+p.App.Name, "groups"
	p.Crumbs = []Crumb{{p.App.Name, appURL(p.App)}, {"Groups", ""}}
	p.Data = &GroupsData{Rows: u.groupRows(p.App, groups, sum), Channels: chs, Default: rollout.DefaultPolicy()}
	return nil
}

// GroupData is one group's page.
type GroupData struct {
	Row      *GroupRow
	Stats    rollout.Stats
	Versions Chart
	Statuses Chart
	Channels []*store.Channel
	// Machines are the group's most recently changed instances; Total how many it has.
	Machines    []*store.Instance
	Total       int
	Failures    []*store.Instance
	Activity    []*store.Activity
	Colors      map[string]string
	MachinesURL string
}

func (u *UI) loadGroup(r *http.Request, p *Page) error {
	if err := u.app(r, p); err != nil {
		return err
	}
	ctx := r.Context()
	g, err := u.Store.Group(ctx, p.App.ID, r.PathValue("group"))
	if err != nil {
		return err
	}
	sum, err := u.Store.Summary(ctx, p.App.ID)
	if err != nil {
		return err
	}
	row := u.groupRows(p.App, []*store.Group{g}, sum)[0]
	d := &GroupData{Row: row, Colors: VersionColors(sum.Versions), MachinesURL: instancesURL(p.App, "group", g.ID)}
	if g.Version != "" {
		if d.Stats, err = u.Store.RolloutStats(ctx, g, p.Now); err != nil {
			return err
		}
	}
	d.Versions = VersionChart("Versions in "+g.Name, row.Sum.Versions, d.Colors, g.Version,
		func(k string) string { return instancesURL(p.App, "group", g.ID, "version", k) })
	d.Statuses = StatusChart("Update status in "+g.Name, row.Sum.Statuses,
		func(k string) string { return instancesURL(p.App, "group", g.ID, "status", k) })
	if d.Channels, err = u.Store.Channels(ctx, p.App.ID); err != nil {
		return err
	}
	if d.Machines, d.Total, err = u.Store.Instances(ctx, p.App.ID, store.InstanceFilter{GroupID: g.ID, Sort: "status_at", Desc: true, PerPage: 25}); err != nil {
		return err
	}
	for _, st := range []rollout.Status{rollout.StatusError, rollout.StatusTimedOut} {
		f, _, err := u.Store.Instances(ctx, p.App.ID, store.InstanceFilter{GroupID: g.ID, Status: st, Sort: "status_at", Desc: true, PerPage: 20})
		if err != nil {
			return err
		}
		d.Failures = append(d.Failures, f...)
	}
	if d.Activity, err = u.Store.ActivityLog(ctx, store.ActivityFilter{AppID: p.App.ID, GroupID: g.ID, Limit: 12}); err != nil {
		return err
	}
	p.Title, p.Section, p.Data = g.Name+" — "+p.App.Name, "groups", d
	p.Crumbs = []Crumb{{p.App.Name, appURL(p.App)}, {"Groups", appURL(p.App) + "/groups"}, {g.Name, ""}}
	return nil
}

// PackagesData is an application's packages and channels.
type PackagesData struct {
	Packages []*store.Package
	Channels []*ChannelRow
	// Publishable: channels, for the publish forms.
	Names []string
}

// ChannelRow is a channel with the groups that follow it.
type ChannelRow struct {
	Channel *store.Channel
	Groups  []*store.Group
}

func (u *UI) loadPackages(r *http.Request, p *Page) error {
	if err := u.app(r, p); err != nil {
		return err
	}
	ctx := r.Context()
	pkgs, err := u.Store.Packages(ctx, p.App.ID)
	if err != nil {
		return err
	}
	chs, err := u.Store.Channels(ctx, p.App.ID)
	if err != nil {
		return err
	}
	groups, err := u.Store.Groups(ctx, p.App.ID)
	if err != nil {
		return err
	}
	d := &PackagesData{Packages: pkgs}
	for _, c := range chs {
		row := &ChannelRow{Channel: c}
		for _, g := range groups {
			if g.ChannelID == c.ID {
				row.Groups = append(row.Groups, g)
			}
		}
		d.Channels = append(d.Channels, row)
		d.Names = append(d.Names, c.Name)
	}
	p.Title, p.Section, p.Data = "Packages — "+p.App.Name, "packages", d
	p.Crumbs = []Crumb{{p.App.Name, appURL(p.App)}, {"Packages & channels", ""}}
	return nil
}

// InstancesData is a page of an application's instances.
type InstancesData struct {
	Group, Version, Status, Q, Sort, Order string
	Groups                                 []*store.Group
	GroupNames                             map[string]string
	Versions                               []store.Breakdown
	Statuses                               []rollout.Status
	Instances                              []*store.Instance
	Total, Page, PerPage, Pages            int
	PrevURL, NextURL                       string
	Colors                                 map[string]string
	Filtered                               bool
}

func (u *UI) loadInstances(r *http.Request, p *Page) error {
	if err := u.app(r, p); err != nil {
		return err
	}
	ctx := r.Context()
	q := r.URL.Query()
	d := &InstancesData{Group: q.Get("group"), Version: q.Get("version"), Status: q.Get("status"), Q: strings.TrimSpace(q.Get("q")),
		Sort: q.Get("sort"), Order: q.Get("order"), Statuses: rollout.Statuses, PerPage: 50, GroupNames: map[string]string{}}
	d.Filtered = d.Group != "" || d.Version != "" || d.Status != "" || d.Q != ""
	page, err := strconv.Atoi(firstOf(q.Get("page"), "1"))
	if err != nil || page < 1 {
		return fmt.Errorf("%w: page=%q: want a page number", errBadQuery, q.Get("page"))
	}
	if d.Groups, err = u.Store.Groups(ctx, p.App.ID); err != nil {
		return err
	}
	for _, g := range d.Groups {
		d.GroupNames[g.ID] = g.Name
	}
	sum, err := u.Store.Summary(ctx, p.App.ID)
	if err != nil {
		return err
	}
	d.Versions, d.Colors = sum.Versions, VersionColors(sum.Versions)
	f := store.InstanceFilter{Version: d.Version, Status: rollout.Status(d.Status), Search: d.Q, Sort: d.Sort, Desc: d.Order == "desc",
		Page: page, PerPage: d.PerPage}
	if d.Sort == "" {
		f.Sort, f.Desc = "last_check", true
	}
	if d.Group != "" {
		g, err := u.Store.Group(ctx, p.App.ID, d.Group)
		if err != nil {
			return err
		}
		f.GroupID, d.Group = g.ID, g.ID
	}
	if d.Instances, d.Total, err = u.Store.Instances(ctx, p.App.ID, f); err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return fmt.Errorf("%w: %v", errBadQuery, err)
		}
		return err
	}
	d.Page, d.Pages = page, max(1, (d.Total+d.PerPage-1)/d.PerPage)
	link := func(n int) string {
		v := url.Values{}
		for _, k := range []string{"group", "version", "status", "q", "sort", "order"} {
			if x := q.Get(k); x != "" {
				v.Set(k, x)
			}
		}
		v.Set("page", strconv.Itoa(n))
		return appURL(p.App) + "/instances?" + v.Encode()
	}
	if page > 1 {
		d.PrevURL = link(page - 1)
	}
	if page < d.Pages {
		d.NextURL = link(page + 1)
	}
	p.Title, p.Section, p.Data = "Instances — "+p.App.Name, "instances", d
	p.Crumbs = []Crumb{{p.App.Name, appURL(p.App)}, {"Instances", ""}}
	return nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// InstanceData is one instance's page.
type InstanceData struct {
	In       *store.Instance
	Group    *store.Group
	Events   []*store.Event
	History  []*store.HistoryEntry
	Activity []*store.Activity
	Lease    *cluster.Lease
	Lock     *cluster.Lock
	Node     *cluster.Node
	Colors   map[string]string
}

func (u *UI) loadInstance(r *http.Request, p *Page) error {
	if err := u.app(r, p); err != nil {
		return err
	}
	ctx := r.Context()
	in, err := u.Store.Instance(ctx, p.App.ID, r.PathValue("instance"))
	if err != nil {
		return err
	}
	d := &InstanceData{In: in}
	if in.GroupID != "" {
		if d.Group, err = u.Store.Group(ctx, p.App.ID, in.GroupID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	if d.Events, err = u.Store.Events(ctx, store.EventFilter{AppID: p.App.ID, InstanceID: in.ID, Limit: 50}); err != nil {
		return err
	}
	if d.History, err = u.Store.History(ctx, p.App.ID, in.ID, 50); err != nil {
		return err
	}
	if d.Activity, err = u.Store.ActivityLog(ctx, store.ActivityFilter{AppID: p.App.ID, InstanceID: in.ID, Limit: 10}); err != nil {
		return err
	}
	sum, err := u.Store.Summary(ctx, p.App.ID)
	if err != nil {
		return err
	}
	d.Colors = VersionColors(sum.Versions)
	d.Lease, d.Lock = p.Cluster.LeaseOf(in.IP), p.Cluster.HoldsLock(in.ID)
	d.Node = p.Cluster.Kubernetes.NodeOf(in.ID, in.IP)
	p.Title, p.Section, p.Data = MachineName(in)+" — "+p.App.Name, "instances", d
	p.Crumbs = []Crumb{{p.App.Name, appURL(p.App)}, {"Instances", appURL(p.App) + "/instances"}, {MachineName(in), ""}}
	return nil
}

// ClusterData is the cluster page: etcd's reboot locks and leases, Kubernetes' nodes, and
// the machines they name.
type ClusterData struct {
	Snap cluster.Snapshot
	// Machines are the instances that hold locks, lease subnets or are nodes, by machine
	// id and by IP.
	ByID, ByIP map[string]*MachineRef
}

// MachineRef is an instance a cluster object names.
type MachineRef struct {
	Name, URL string
}

func (u *UI) loadCluster(r *http.Request, p *Page) error {
	ctx := r.Context()
	d := &ClusterData{Snap: p.Cluster, ByID: map[string]*MachineRef{}, ByIP: map[string]*MachineRef{}}
	apps := p.Apps
	if apps == nil {
		var err error
		if apps, err = u.Store.Apps(ctx); err != nil {
			return err
		}
	}
	var ids, ips []string
	for _, h := range d.Snap.Holders() {
		ids = append(ids, h.ID)
	}
	for _, l := range d.Snap.Leases {
		if l.PublicIP != "" {
			ips = append(ips, l.PublicIP)
		}
	}
	if d.Snap.Kubernetes != nil {
		for _, n := range d.Snap.Kubernetes.Items {
			if n.MachineID != "" {
				ids = append(ids, n.MachineID)
			}
		}
	}
	for _, a := range apps {
		for _, id := range ids {
			if d.ByID[id] != nil {
				continue
			}
			if in, err := u.Store.Instance(ctx, a.ID, id); err == nil {
				d.ByID[id] = &MachineRef{Name: MachineName(in), URL: appURL(a) + "/instances/" + url.PathEscape(in.ID)}
			}
		}
		for _, ip := range ips {
			if d.ByIP[ip] != nil {
				continue
			}
			ins, _, err := u.Store.Instances(ctx, a.ID, store.InstanceFilter{Search: ip, PerPage: 20})
			if err != nil {
				return err
			}
			for _, in := range ins {
				if in.IP == ip {
					d.ByIP[ip] = &MachineRef{Name: MachineName(in), URL: appURL(a) + "/instances/" + url.PathEscape(in.ID)}
					break
				}
			}
		}
	}
	p.Title, p.Section, p.Data = "Cluster", "cluster", d
	return nil
}

// ActivityData is a page of the activity log.
type ActivityData struct {
	Entries                       []*store.Activity
	App, Severity, Kind, OlderURL string
	Kinds                         []string
	GroupNames                    map[string]string
	AppRefs                       map[string]string
	// Machines name the entries' instances (app id and machine id).
	Machines map[[2]string]string
}

var activityKinds = []string{"rollout.started", "rollout.halted", "instance.failed", "instance.rolledback", "instance.timedout",
	"instance.declined", "group.created", "group.updated", "group.paused", "group.resumed", "group.approved", "group.deleted",
	"package.uploaded", "package.published", "package.deleted", "channel.created", "channel.published", "rebootlock.unlocked",
	"user.created", "user.updated", "user.deleted", "token.created", "token.deleted", "app.created"}

func (u *UI) loadActivity(r *http.Request, p *Page) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := &ActivityData{App: q.Get("app"), Severity: q.Get("severity"), Kind: q.Get("kind"), Kinds: activityKinds,
		GroupNames: map[string]string{}, AppRefs: map[string]string{}}
	f := store.ActivityFilter{Severity: d.Severity, Kind: d.Kind, Limit: 50}
	if d.App != "" {
		a, err := u.Store.App(ctx, d.App)
		if err != nil {
			return err
		}
		f.AppID, p.App = a.ID, a
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: before=%q: want an entry id", errBadQuery, b)
		}
		f.BeforeID = n
	}
	var err error
	if d.Entries, err = u.Store.ActivityLog(ctx, f); err != nil {
		return err
	}
	apps := p.Apps
	if apps == nil {
		if apps, err = u.Store.Apps(ctx); err != nil {
			return err
		}
	}
	for _, a := range apps {
		d.AppRefs[a.ID] = appRef(a)
		gs, err := u.Store.Groups(ctx, a.ID)
		if err != nil {
			return err
		}
		for _, g := range gs {
			d.GroupNames[g.ID] = g.Name
		}
	}
	d.Machines = map[[2]string]string{}
	for _, e := range d.Entries {
		k := [2]string{e.AppID, e.InstanceID}
		if e.InstanceID == "" || e.AppID == "" {
			continue
		}
		if _, ok := d.Machines[k]; ok {
			continue
		}
		d.Machines[k] = Short(e.InstanceID)
		if in, err := u.Store.Instance(ctx, e.AppID, e.InstanceID); err == nil {
			d.Machines[k] = MachineName(in)
		}
	}
	if len(d.Entries) == f.Limit {
		v := url.Values{}
		for _, k := range []string{"app", "severity", "kind"} {
			if x := q.Get(k); x != "" {
				v.Set(k, x)
			}
		}
		v.Set("before", strconv.FormatInt(d.Entries[len(d.Entries)-1].ID, 10))
		d.OlderURL = "/activity?" + v.Encode()
	}
	if !slices.Contains(d.Kinds, d.Kind) && d.Kind != "" {
		d.Kinds = append(d.Kinds, d.Kind)
	}
	p.Title, p.Section, p.Data = "Activity", "activity", d
	return nil
}

// AdminData is the users and tokens page.
type AdminData struct {
	Users  []*store.User
	Tokens []*store.Token
	// Secret is a token just made, shown once.
	Secret, SecretName string
}

func (u *UI) loadAdmin(r *http.Request, p *Page) error {
	ctx := r.Context()
	users, err := u.Store.Users(ctx)
	if err != nil {
		return err
	}
	tokens, err := u.Store.Tokens(ctx, "")
	if err != nil {
		return err
	}
	p.Title, p.Section, p.Data = "Users & tokens", "admin", &AdminData{Users: users, Tokens: tokens}
	return nil
}

// AppsData lists the applications.
type AppsData struct {
	Apps []*AppRow
}

// AppRow is an application with its counts.
type AppRow struct {
	App       *store.App
	Instances int
	Groups    []*store.Group
	Channels  []*store.Channel
}

func (u *UI) loadApps(r *http.Request, p *Page) error {
	ctx := r.Context()
	d := &AppsData{}
	for _, a := range p.Apps {
		row := &AppRow{App: a}
		var err error
		if row.Groups, err = u.Store.Groups(ctx, a.ID); err != nil {
			return err
		}
		if row.Channels, err = u.Store.Channels(ctx, a.ID); err != nil {
			return err
		}
		counts, err := u.Store.Counts(ctx, a.ID)
		if err != nil {
			return err
		}
		for _, c := range counts {
			row.Instances += c.N
		}
		d.Apps = append(d.Apps, row)
	}
	p.Title, p.Section, p.Data = "Applications", "apps", d
	return nil
}
