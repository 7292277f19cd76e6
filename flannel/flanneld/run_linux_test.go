package flanneld

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRunVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if err := Run(t.Context(), []string{"-version"}, &out, &errb); err != nil || strings.TrimSpace(out.String()) != Version {
		t.Fatalf("-version: %v %q", err, out.String())
	}
	for _, args := range [][]string{{"-bogus"}, {"-log-level", "loud"}, {"-subnet-lease-renew-margin", "0"}} {
		errb.Reset()
		if err := Run(t.Context(), args, &out, &errb); !errors.Is(err, ErrUsage) || errb.Len() == 0 {
			t.Errorf("Run(%q) = %v, stderr %q", args, err, errb.String())
		}
	}
}
