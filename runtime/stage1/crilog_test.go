package stage1

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type logged struct {
	line    string
	partial bool
}

func split(max int, writes ...string) []logged {
	var out []logged
	sp := &lineSplitter{max: max, emit: func(l []byte, p bool) { out = append(out, logged{string(l), p}) }}
	for _, w := range writes {
		sp.write([]byte(w))
	}
	sp.flush()
	return out
}

func TestLineSplitter(t *testing.T) {
	for _, c := range []struct {
		name   string
		max    int
		writes []string
		want   []logged
	}{
		{"lines", 8, []string{"a\nbb\n"}, []logged{{"a", false}, {"bb", false}}},
		{"empty line", 8, []string{"\n\n"}, []logged{{"", false}, {"", false}}},
		{"across writes", 8, []string{"ab", "c\nd", "e\n"}, []logged{{"abc", false}, {"de", false}}},
		{"no newline at the end", 8, []string{"a\nlast"}, []logged{{"a", false}, {"last", true}}},
		{"exactly max", 4, []string{"abcd\n"}, []logged{{"abcd", false}}},
		{"exactly max, newline later", 4, []string{"abcd", "\n"}, []logged{{"abcd", false}}},
		{"max plus one", 4, []string{"abcde\n"}, []logged{{"abcd", true}, {"e", false}}},
		{"long line", 4, []string{"abcdefghij\nx\n"}, []logged{{"abcd", true}, {"efgh", true}, {"ij", false}, {"x", false}}},
		{"long line in pieces", 4, []string{"ab", "cdef", "ghij", "k"}, []logged{{"abcd", true}, {"efgh", true}, {"ijk", true}}},
		{"long last line", 4, []string{"abcdefgh"}, []logged{{"abcd", true}, {"efgh", true}}},
		{"nothing", 4, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := split(c.max, c.writes...)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestCRILogLine(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	for _, c := range []struct {
		stream  string
		partial bool
		content string
		want    string
	}{
		{"stdout", false, "hello", "2016-10-06T00:17:09.669794202Z stdout F hello\n"},
		{"stderr", true, "half", "2016-10-06T00:17:09.669794202Z stderr P half\n"},
		{"stdout", false, "", "2016-10-06T00:17:09.669794202Z stdout F \n"},
	} {
		if got := string(criLogLine(ts, c.stream, c.partial, []byte(c.content))); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	// Trailing zeros of the fraction go, as Go's RFC3339Nano (and kubelet's parser) has it.
	ts = time.Date(2016, 10, 6, 0, 17, 9, 500000000, time.FixedZone("", 2*3600))
	if got := string(criLogLine(ts, "stdout", false, []byte("x"))); got != "2016-10-06T00:17:09.5+02:00 stdout F x\n" {
		t.Errorf("got %q", got)
	}
}

func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "app.log")
	l, err := openLogFile(p)
	if err != nil {
		t.Fatal(err)
	}
	l.write("stdout", false, []byte("one"))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	l.write("stdout", false, []byte("two")) // still the moved file, until the reopen
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	l.write("stderr", true, []byte("three"))
	l.close()
	l.write("stdout", false, []byte("after close"))
	old, _ := os.ReadFile(p + ".1")
	cur, _ := os.ReadFile(p)
	lines := func(b []byte) string {
		var out []string
		for l := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
			f := strings.SplitN(l, " ", 4)
			if len(f) == 4 {
				out = append(out, f[1]+" "+f[2]+" "+f[3])
			}
		}
		return strings.Join(out, "|")
	}
	if lines(old) != "stdout F one|stdout F two" || lines(cur) != "stderr P three" {
		t.Fatalf("old %q new %q", old, cur)
	}
}

func TestOOMKills(t *testing.T) {
	for text, want := range map[string]int{
		"oom_kill_disable 0\nunder_oom 0\noom_kill 2\n":             2, // v1 memory.oom_control
		"low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0": 1, // v2 memory.events
		"oom_kill_disable 0\nunder_oom 0\n":                         0, // before Linux 4.13
		"":                                                          0,
		"oom_kill x":                                                0,
	} {
		if got := oomKills(text); got != want {
			t.Errorf("%q: %d, want %d", text, got, want)
		}
	}
}
