package rktconfig

import (
	"encoding/base64"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, sub, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, sub, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadLayers(t *testing.T) {
	sys, local, user := t.TempDir(), t.TempDir(), t.TempDir()
	write(t, sys, "auth.d", "a.json", `{"rktKind":"auth","rktVersion":"v1","domains":["example.com","Other.example.com"],"type":"basic","credentials":{"user":"sys","password":"p"}}`)
	write(t, local, "auth.d", "a.json", `{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"oauth","credentials":{"token":"tok"}}`)
	write(t, user, "auth.d", "d.json", `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"u","password":"pw"}}`)
	write(t, sys, "paths.d", "p.json", `{"rktKind":"paths","rktVersion":"v1","stage1-images":"/opt/s1"}`)
	write(t, sys, "stage1.d", "s.json", `{"rktKind":"stage1","rktVersion":"v1","name":"example.com/s1","version":"2"}`)
	write(t, sys, "store.d", "10-vendor.json", `{"rktKind":"store","rktVersion":"v1","maxImageSize":"8GiB","maxImageEntries":500000}`)
	write(t, local, "store.d", "50-site.json", `{"rktKind":"store","rktVersion":"v1","maxImageSize":"20GiB"}`)
	write(t, local, "auth.d", "README", "ignored: not .json")
	c, err := Load(Dir{Path: sys}, Dir{Path: local}, Dir{Path: user, User: true}, Dir{})
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Header("example.com:443"); h.Get("Authorization") != "Bearer tok" {
		t.Errorf("example.com: %v (local must override system)", h)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("sys:p"))
	if h := c.Header("other.example.com"); h.Get("Authorization") != want {
		t.Errorf("other.example.com: %v", h)
	}
	if h := c.Header("elsewhere.org"); h != nil {
		t.Errorf("elsewhere.org got %v", h)
	}
	if cr, ok := c.Docker("quay.io"); !ok || cr.User != "u" {
		t.Errorf("docker creds %v %v", cr, ok)
	}
	if c.Paths.Data != Defaults.Data || c.Paths.Stage1Images != "/opt/s1" {
		t.Errorf("paths %+v", c.Paths)
	}
	if c.Stage1.Name != "example.com/s1" || c.Stage1.Version != "2" {
		t.Errorf("stage1 %+v", c.Stage1)
	}
	wantFrom := map[string]string{"maxImageSize": filepath.Join(local, "store.d/50-site.json"), "maxImageEntries": filepath.Join(sys, "store.d/10-vendor.json")}
	if c.Store.MaxImageSize != 20<<30 || c.Store.MaxImageEntries != 500000 || c.Store.MaxCompressionRatio != 0 || !maps.Equal(c.Store.From, wantFrom) {
		t.Errorf("store %+v; want 20 GiB from local, 500000 entries from system, ratio unset", c.Store)
	}
	st := c.Stage0()["stage0"]
	if len(st) != 6 || st[0]["rktKind"] != "auth" || st[3]["rktKind"] != "paths" || st[4]["rktKind"] != "stage1" ||
		st[5]["rktKind"] != "store" || st[5]["maxImageSize"] != "20GiB" || st[5]["maxImageEntries"] != int64(500000) || st[5]["maxCompressionRatio"] != nil {
		t.Errorf("stage0 %v", st)
	}
}

func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct {
		name, sub, body string
		user            bool
		want            string
	}{
		{"not json", "auth.d", "{", false, "not JSON"},
		{"wrong version", "paths.d", `{"rktKind":"paths","rktVersion":"v2"}`, false, `rktVersion "v2"`},
		{"unknown kind", "paths.d", `{"rktKind":"nope","rktVersion":"v1"}`, false, `unknown rktKind "nope"`},
		{"kind in wrong dir", "stage1.d", `{"rktKind":"paths","rktVersion":"v1"}`, false, "does not belong in stage1.d"},
		{"unknown field", "paths.d", `{"rktKind":"paths","rktVersion":"v1","dta":"/x"}`, false, `unknown field "dta"`},
		{"bad auth type", "auth.d", `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"magic","credentials":{}}`, false, `auth type "magic"`},
		{"auth without domains", "auth.d", `{"rktKind":"auth","rktVersion":"v1","type":"basic","credentials":{"user":"u"}}`, false, "no domains"},
		{"paths in user config", "paths.d", `{"rktKind":"paths","rktVersion":"v1","data":"/x"}`, true, "not allowed in a user configuration"},
		{"too big", "auth.d", strings.Repeat(" ", MaxFileSize+1), false, "larger than"},
		{"store in user config", "store.d", `{"rktKind":"store","rktVersion":"v1","maxImageSize":"1TiB"}`, true, "not allowed in a user configuration"},
		{"store in paths.d", "paths.d", `{"rktKind":"store","rktVersion":"v1","maxImageSize":"1TiB"}`, false, "does not belong in paths.d"},
		{"store size without a number", "store.d", `{"rktKind":"store","rktVersion":"v1","maxImageSize":"lots"}`, false, `size "lots"`},
		{"store size not whole", "store.d", `{"rktKind":"store","rktVersion":"v1","maxImageSize":1.5}`, false, "size 1.5"},
		{"store ratio zero", "store.d", `{"rktKind":"store","rktVersion":"v1","maxCompressionRatio":0}`, false, "maxCompressionRatio must be positive"},
		{"store entries negative", "store.d", `{"rktKind":"store","rktVersion":"v1","maxImageEntries":-1}`, false, "maxImageEntries must be positive"},
		{"store unknown field", "store.d", `{"rktKind":"store","rktVersion":"v1","maxSize":"1GiB"}`, false, `unknown field "maxSize"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			write(t, d, tc.sub, "bad.json", tc.body)
			_, err := Load(Dir{Path: d, User: tc.user})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.json") {
				t.Fatalf("err %v; want it to name bad.json and say %q", err, tc.want)
			}
		})
	}
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		out  string
	}{
		{`"20GiB"`, 20 << 30, "20GiB"},
		{`"20 GiB"`, 20 << 30, "20GiB"},
		{`"500MB"`, 500_000_000, "500000000"},
		{`"1.5GiB"`, 3 << 29, "1536MiB"},
		{`"2TiB"`, 2 << 40, "2TiB"},
		{`1048576`, 1 << 20, "1MiB"},
		{`"4096"`, 4096, "4KiB"},
		{`1000`, 1000, "1000"},
		{`"16EiB"`, -1, ""},
		{`"-1GiB"`, -1, ""},
		{`true`, -1, ""},
	} {
		var z size
		err := z.UnmarshalJSON([]byte(tc.in))
		if tc.want < 0 {
			if err == nil {
				t.Errorf("%s: %d; want an error", tc.in, z)
			}
			continue
		}
		if err != nil || int64(z) != tc.want || formatSize(int64(z)) != tc.out {
			t.Errorf("%s: %d (%v), written back %q; want %d, %q", tc.in, z, err, formatSize(int64(z)), tc.want, tc.out)
		}
	}
}

// FuzzConfigFile feeds hostile config files to the parser: errors, never panics.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(`{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u"}}`), "auth.d")
	f.Add([]byte(`{"rktKind":"paths","rktVersion":"v1","data":"/x"}`), "paths.d")
	f.Add([]byte(`{"rktKind":"stage1","rktVersion":"v1","name":"n"}`), "stage1.d")
	f.Add([]byte(`{"rktKind":"store","rktVersion":"v1","maxImageSize":"20GiB","maxImageEntries":9,"maxCompressionRatio":50}`), "store.d")
	f.Fuzz(func(t *testing.T, data []byte, sub string) {
		c := &Config{Auth: map[string]Auth{}, DockerAuth: map[string]Credentials{}}
		if err := c.apply("fuzz.json", data, sub, false); err == nil {
			c.Stage0()
			c.Header("a")
		}
	})
}
