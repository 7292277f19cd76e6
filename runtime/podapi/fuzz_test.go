package podapi

import (
	"bytes"
	"testing"
)

// FuzzDecodeRequest feeds the supervisor's request decoder, which reads bytes from any local
// client: it never panics, and what it accepts is a valid request that encodes and decodes
// back to the same line.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"method":"status"}`,
		`{"method":"start","app":"web"}`,
		`{"method":"stop","app":"web","timeout":1000000000}`,
		`{"method":"attach","app":"web","stdin":true,"stdout":true,"closeStdin":true}`,
		`{"method":"resize","app":"web","rows":24,"cols":80}`,
		`{"method":"add","add":{"app":{"name":"web","image":{"id":"sha512-aa"},"app":{"exec":["/bin/sh"],"user":"0","group":"0","isolators":[{"name":"resource/memory","value":{"limit":"16M"}}]},"mounts":[{"volume":"d","path":"/d"}]},"image":{"name":"x","imageID":"sha512-aa","layers":["/l/a","/l/b"]},"volumes":[{"name":"d","kind":"empty"}],"stdin":"tty","logPath":"/var/log/x.log"}}`,
		`{"method":"add","add":{"app":{"name":"web","image":{"id":"sha512-aa"},"app":{"exec":["sh"],"user":"0","group":"0"}},"image":{"name":"x","imageID":"sha512-aa","layers":["/l/a"]},"linux":{"capabilities":["CAP_CHOWN"],"seccomp":"profile","seccompProfile":{"defaultAction":"SCMP_ACT_ALLOW"},"maskedPaths":[],"devices":[{"hostPath":"/dev/null","path":"/dev/n","permissions":"rw"}],"propagation":{"/d":"rshared"},"oomScoreAdj":-5,"resources":{"cpuShares":512,"memoryLimit":1048576,"cpusetCPUs":"0-1","unified":{"memory.high":"max"}}}}}`,
		`{"method":"update","app":"web","resources":{"cpuQuota":50000,"cpuPeriod":100000}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		line, err := EncodeRequest(req)
		if err != nil {
			t.Fatalf("accepted request does not encode: %v", err)
		}
		again, err := DecodeRequest(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			t.Fatalf("re-decode of %s: %v", line, err)
		}
		line2, err := EncodeRequest(again)
		if err != nil || !bytes.Equal(line, line2) {
			t.Fatalf("not stable:\n%s\n%s (%v)", line, line2, err)
		}
	})
}
