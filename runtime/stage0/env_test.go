package stage0

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

func TestParseEnvFile(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"A=1\nB=two words\n\n# comment\n; comment\nC=\nD=a=b\n", []string{"A=1", "B=two words", "C=", "D=a=b"}, false},
		{"A=\"quoted\"", []string{`A="quoted"`}, false}, // taken as it is, as rkt did
		{"", nil, false},
		{"NOEQUALS\n", nil, true},
		{"=value\n", nil, true},
	} {
		got, err := ParseEnvFile(strings.NewReader(c.in))
		if c.err != (err != nil) || !c.err && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %q %v, want %q (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

// rkt's precedence, lowest first: the image's environment, the inherited one (only what the
// image does not set), --set-env-file, --set-env, the app's --environment.
func TestEnvPrecedence(t *testing.T) {
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	os.WriteFile(f1, []byte("B=file\n"), 0o644)
	os.WriteFile(f2, []byte("# more\nD=file\n"), 0o644)
	h := &Host{Environ: []string{"A=host", "C=host", "B=host"}}
	env, err := h.env(&Config{InheritEnv: true, EnvFiles: []string{f1, f2}, Env: []string{"D=set", "E=set"}})
	if err != nil {
		t.Fatal(err)
	}
	e := types.Environment{{Name: "A", Value: "image"}, {Name: "B", Value: "image"}}
	env.apply(&e, []string{"E=app"})
	want := types.Environment{{Name: "A", Value: "image"}, {Name: "B", Value: "file"}, {Name: "C", Value: "host"},
		{Name: "D", Value: "set"}, {Name: "E", Value: "app"}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("environment\n got %v\nwant %v", e, want)
	}
	// Without --inherit-env nothing of the host's.
	env, _ = h.env(&Config{})
	e = types.Environment{}
	env.apply(&e, nil)
	if len(e) != 0 {
		t.Errorf("without --inherit-env: %v", e)
	}
	for _, cfg := range []*Config{
		{EnvFiles: []string{f1, f1}},
		{Env: []string{"X=1", "X=2"}},
		{EnvFiles: []string{filepath.Join(dir, "missing")}},
	} {
		if _, err := h.env(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
