package rktconfig

import (
	"encoding/base64"
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
	st := c.Stage0()["stage0"]
	if len(st) != 5 || st[0]["rktKind"] != "auth" || st[3]["rktKind"] != "paths" || st[4]["rktKind"] != "stage1" {
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

// FuzzConfigFile feeds hostile config files to the parser: errors, never panics.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(`{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u"}}`), "auth.d")
	f.Add([]byte(`{"rktKind":"paths","rktVersion":"v1","data":"/x"}`), "paths.d")
	f.Add([]byte(`{"rktKind":"stage1","rktVersion":"v1","name":"n"}`), "stage1.d")
	f.Fuzz(func(t *testing.T, data []byte, sub string) {
		c := &Config{Auth: map[string]Auth{}, DockerAuth: map[string]Credentials{}}
		if err := c.apply(data, sub, false); err == nil {
			c.Stage0()
			c.Header("a")
		}
	})
}
