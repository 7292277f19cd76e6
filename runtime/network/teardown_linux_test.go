package network

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePlugin is a CNI plugin that records its calls in log, fails ADD and DEL whose CNI_ARGS
// hold BAD= (as a plugin fails on an argument it cannot parse), and fails every DEL of a
// network configured with "delFails".
const fakePlugin = `#!/bin/sh
conf=$(cat)
[ "$CNI_COMMAND" = VERSION ] && { echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'; exit 0; }
echo "$CNI_COMMAND $CNI_IFNAME [$CNI_ARGS]" >>LOG
case "$CNI_ARGS" in *BAD=*) echo '{"code":999,"msg":"ARGS: error parsing value of pair \"BAD\""}'; exit 1;; esac
case "$CNI_COMMAND$conf" in DEL*'"delFails":true'*) echo '{"code":999,"msg":"cannot delete"}'; exit 1;; esac
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"0.4.0","interfaces":[{"name":"fakehost0","mac":"02:00:00:00:00:01"}],"ips":[{"version":"4","address":"10.99.0.2/24"}]}'
exit 0
`

// fakeEnv is a Manager whose networks run fakePlugin: "fake", and "stuck" whose DEL fails.
func fakeEnv(t *testing.T) (*Manager, func() string) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	bin := filepath.Join(dir, "bin")
	conf := filepath.Join(dir, "net.d")
	for _, d := range []string{bin, conf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "fake"), []byte(strings.ReplaceAll(fakePlugin, "LOG", log)), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]string{
		"10-fake.conf":  `{"cniVersion":"0.4.0","name":"fake","type":"fake"}`,
		"20-stuck.conf": `{"cniVersion":"0.4.0","name":"stuck","type":"fake","delFails":true}`,
	} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &Manager{ConfDirs: []string{conf}, PluginDirs: []string{bin}, CacheDir: filepath.Join(dir, "cache"), StateFile: filepath.Join(dir, "net-state.json")}
	calls := func() string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return string(b)
	}
	return m, calls
}

func attachFake(t *testing.T, m *Manager, nets ...string) (*State, error) {
	t.Helper()
	sel, err := ParseSelection(nets)
	if err != nil {
		t.Fatal(err)
	}
	return m.Attach(context.Background(), "pod1", filepath.Join(t.TempDir(), "netns"), sel, nil)
}

// A network whose ADD failed on its arguments is left without them: teardown succeeds, and a
// gc that retries it does not fail forever.
func TestTeardownAfterBadArguments(t *testing.T) {
	m, calls := fakeEnv(t)
	if _, err := attachFake(t, m, "fake:BAD=x"); err == nil || !strings.Contains(err.Error(), "ARGS: error parsing") {
		t.Fatalf("attach with a bad argument: %v", err)
	}
	st, err := LoadState(m.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nets) != 1 || st.Nets[0].Phase != AddFailed {
		t.Fatalf("state after a failed ADD: %+v", st.Nets)
	}
	// The failed attach tore itself down: DEL with the arguments, then without.
	want := "ADD eth0 [IgnoreUnknown=1;BAD=x]\nDEL eth0 [IgnoreUnknown=1;BAD=x]\nDEL eth0 []\n"
	if got := calls(); got != want {
		t.Fatalf("plugin calls:\n%s\nwant:\n%s", got, want)
	}
	for range 2 { // as gc does, any number of times
		if err := m.Teardown(context.Background(), st); err != nil {
			t.Fatalf("teardown of a network whose ADD failed: %v", err)
		}
	}
}

func TestTeardownPhases(t *testing.T) {
	m, calls := fakeEnv(t)
	st, err := attachFake(t, m, "fake")
	if err != nil {
		t.Fatal(err)
	}
	a := st.Nets[0]
	if a.Phase != Added || len(a.IPs) != 1 || len(a.HostLinks) != 1 || a.HostLinks[0] != (HostLink{Name: "fakehost0", MAC: "02:00:00:00:00:01"}) {
		t.Fatalf("attachment after ADD: %+v", a)
	}
	if saved, err := LoadState(m.StateFile); err != nil || saved.Nets[0].Phase != Added || len(saved.Nets[0].HostLinks) != 1 {
		t.Fatalf("saved state: %+v, %v", saved, err)
	}
	if err := m.Teardown(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	calls()

	stuck := func(p Phase, args ...[2]string) *State {
		conf := `{"cniVersion":"0.4.0","name":"stuck","plugins":[{"cniVersion":"0.4.0","name":"stuck","type":"fake","delFails":true}]}`
		return &State{PodID: "pod2", NetNS: "/nonexistent", PluginDirs: m.PluginDirs,
			Nets: []Attachment{{Name: "stuck", IfName: "eth0", Conf: conf, Args: args, Phase: p}}}
	}
	for _, c := range []struct {
		name  string
		st    *State
		fails bool
		calls string
	}{
		// A network that was joined must be left: its DEL's failure stands, gc retries.
		{"added", stuck(Added), true, "DEL eth0 []\n"},
		// An ADD cut short (or a state from before phases) may have left anything.
		{"interrupted", stuck(Adding, [2]string{"X", "1"}), true, "DEL eth0 [X=1]\nDEL eth0 []\n"},
		// An ADD that failed undid its own work: a DEL that fails too is only logged.
		{"failed", stuck(AddFailed, [2]string{"X", "1"}), false, "DEL eth0 [X=1]\nDEL eth0 []\n"},
	} {
		err := m.Teardown(context.Background(), c.st)
		if (err != nil) != c.fails {
			t.Errorf("%s: teardown: %v, want failure %v", c.name, err, c.fails)
		}
		if got := calls(); got != c.calls {
			t.Errorf("%s: plugin calls %q, want %q", c.name, got, c.calls)
		}
	}
	// An interrupted ADD whose arguments the plugin cannot parse is left without them.
	bad := stuck(Adding, [2]string{"BAD", "x"})
	bad.Nets[0].Conf = strings.ReplaceAll(bad.Nets[0].Conf, `,"delFails":true`, "")
	if err := m.Teardown(context.Background(), bad); err != nil {
		t.Errorf("interrupted ADD with a bad argument: %v", err)
	}
}

// A network after the one that failed was never joined and is not deleted; one that does not
// exist as a plugin fails its ADD and is left as failed.
func TestTeardownOnlyWhatWasAdded(t *testing.T) {
	m, calls := fakeEnv(t)
	if err := os.WriteFile(filepath.Join(m.ConfDirs[0], "15-noplugin.conf"), []byte(`{"cniVersion":"0.4.0","name":"noplugin","type":"no-such-plugin"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := attachFake(t, m, "fake,noplugin,stuck")
	if err == nil || !strings.Contains(err.Error(), "no-such-plugin") {
		t.Fatalf("attach: %v", err)
	}
	st, err := LoadState(m.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nets) != 2 || st.Nets[0].Phase != Added || st.Nets[1].Phase != AddFailed {
		t.Fatalf("state: %+v", st.Nets)
	}
	calls()
	if err := m.Teardown(context.Background(), st); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if got := calls(); got != "DEL eth0 []\n" {
		t.Fatalf("plugin calls %q, want the one DEL of fake", got)
	}
}
