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

// The Kubernetes mode fails at its first step, naming what is missing, when it cannot
// learn its Node's name or cannot reach the API server.
func TestRunKubeMissing(t *testing.T) {
	env := map[string]string{}
	old := Getenv
	Getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { Getenv = old })
	var out, errb bytes.Buffer
	args := []string{"-kube-subnet-mgr", "-kube-api-url", "http://127.0.0.1:1", "-healthz-port", "0"}
	if err := Run(t.Context(), args, &out, &errb); err == nil || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Errorf("without NODE_NAME: %v", err)
	}
	if err := Run(t.Context(), append(args, "-kube-annotation-prefix", "a/b/c"), &out, &errb); !errors.Is(err, ErrUsage) {
		t.Errorf("bad prefix: %v", err)
	}
}
