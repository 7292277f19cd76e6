package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cairn-os/cairn/console/api"
	"github.com/cairn-os/cairn/console/payloads"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// FuzzUpload feeds an upload's request (its content type and body) through the parser of
// the upload and the payload directory: whatever the bytes, the file name taken is a plain
// name, the notes bounded UTF-8, nothing is written outside the directory, and a stored
// file is named by the SHA-256 of exactly the bytes it holds; bytes that are no payload
// leave nothing behind.
func FuzzUpload(f *testing.F) {
	f.Add("application/octet-stream", []byte("CAIRNUP1\x00\x00\x00\x10\x00\x40{}"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"release_notes\"\r\n\r\nnotes\r\n"+
		"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/passwd\"\r\n\r\nCAIRNUP1\r\n--XX--\r\n"))
	f.Add("multipart/form-data; boundary=", []byte("--\r\n"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\nwrong\r\n--XX--\r\n"))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		root := t.TempDir()
		dir := &payloads.Dir{Path: filepath.Join(root, "payloads"), MaxSize: 1 << 20}
		r := httptest.NewRequest("POST", "/api/v1/apps/x/packages?filename=a.cairn", bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		u, rd, err := api.ReadUpload(r, "the-csrf-token")
		if err != nil {
			return
		}
		if u.Filename != "" && (strings.ContainsAny(u.Filename, "/\\\x00") || u.Filename == ".." || u.Filename == ".") {
			t.Fatalf("file name %q taken", u.Filename)
		}
		if !utf8.ValidString(u.ReleaseNotes) || len(u.ReleaseNotes) > api.MaxReleaseNotes {
			t.Fatalf("release notes of %d bytes taken", len(u.ReleaseNotes))
		}
		st, err := dir.Store(context.Background(), rd)
		entries, _ := os.ReadDir(root)
		if len(entries) > 1 || (len(entries) == 1 && entries[0].Name() != "payloads") {
			t.Fatalf("written outside the payload directory: %v", entries)
		}
		files, _ := os.ReadDir(dir.Path)
		if err != nil {
			if !errors.Is(err, payloads.ErrNotPayload) && !errors.Is(err, payloads.ErrTooLarge) {
				t.Fatalf("store: %v", err)
			}
			if len(files) != 0 {
				t.Fatalf("a refused upload left %v", files)
			}
			return
		}
		if len(files) != 1 || files[0].Name() != st.File || st.File != st.SHA256+".cairn" {
			t.Fatalf("stored %+v as %v", st, files)
		}
		if _, err := payload.ReadHeader(bytes.NewReader(mustRead(t, filepath.Join(dir.Path, st.File)))); err != nil {
			t.Fatalf("stored a file that is no payload: %v", err)
		}
	})
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzGroupBody decodes a group's JSON as the API does: a body it accepts whose policy
// validates reads back the same after it is written out.
func FuzzGroupBody(f *testing.F) {
	f.Add([]byte(`{"name":"prod","track":"stable","channel":"stable","policy":{"max_in_flight":50,"canaries":2,"halt_percent":10,"halt_min_sample":20,"period":"1h","update_timeout":3600,"window_start":"Thu 04:00","window_length":"2h","timezone":"Europe/Berlin"}}`))
	f.Add([]byte(`{"policy":{"approval":"admin"}}`))
	f.Add([]byte(`{"name":"x","policy":{"period":1e308}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		body := api.GroupBody{Policy: rollout.DefaultPolicy()}
		if err := api.DecodeJSON(bytes.NewReader(b), &body); err != nil {
			return
		}
		if body.Policy.Validate() != nil {
			return
		}
		out, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		back := api.GroupBody{Policy: rollout.DefaultPolicy()}
		if err := api.DecodeJSON(bytes.NewReader(out), &back); err != nil {
			t.Fatalf("%s does not read back: %v", out, err)
		}
		if !reflect.DeepEqual(back, body) {
			t.Fatalf("read back %+v, was %+v", back, body)
		}
	})
}
