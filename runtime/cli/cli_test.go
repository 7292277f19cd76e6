package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.Contains(out, "rkt Version: ") || !strings.Contains(out, "appc Version: 0.8.11") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}

func TestUnknownCommandFails(t *testing.T) {
	_, errOut, code := run(t, "no-such-command")
	if code == 0 || !strings.Contains(errOut, "no-such-command") {
		t.Fatalf("code %d, stderr %q; want failure naming the command", code, errOut)
	}
}
