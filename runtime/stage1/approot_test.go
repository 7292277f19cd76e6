package stage1

import (
	"testing"

	"github.com/cairn-os/cairn/internal/mount"
)

func TestExportMount(t *testing.T) {
	got := ExportMount([]string{"/s/base", "/s/app"}, "/p/apps/web/upper", "/p/apps/web/export-1")
	want := mount.Mount{Source: "overlay", Target: "/p/apps/web/export-1", FSType: "overlay",
		Data: "lowerdir=/p/apps/web/upper:/s/app:/s/base"}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}
