package payload

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDescribeExtension(t *testing.T) {
	dir := t.TempDir()
	hash := strings.Repeat("5a", 32)
	for name, data := range map[string]string{
		"kubernetes-v1.37.2.raw": "image", "kubernetes-v1.37.2.usrhash": hash + "\n",
		"nohash.raw": "image", "other.img": "image", "other.usrhash": hash,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file string
		want Extension
		err  string // "" for none
		is   error
	}{
		// sha256 of "image"
		{file: "kubernetes-v1.37.2.raw", want: Extension{Name: "kubernetes-v1.37.2", Size: 5,
			SHA256: "6105d6cc76af400325e94d588ce511be5bfdbb73b437dc51eca43917d7a43e3d", USRHash: hash}},
		{file: "other.img", err: "want a NAME.raw file"},
		{file: "nohash.raw", err: "its root hash", is: fs.ErrNotExist},
		{file: "missing.raw", err: "its root hash", is: fs.ErrNotExist},
	} {
		got, err := DescribeExtension(filepath.Join(dir, tc.file))
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("%s: %+v, %v; want %+v", tc.file, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.file) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: %v; want an error naming it, saying %q", tc.file, err, tc.err)
		}
	}
}
