package updates_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

// FuzzOmaha posts arbitrary bytes to the Omaha endpoint of a console with a published
// update: a request is refused (400) or answered with a response that parses, one app for
// each of the request's, one acknowledgement for each event; never a 500, and the console
// keeps answering.
func FuzzOmaha(f *testing.F) {
	for _, s := range []string{
		`<request protocol="3.0"><app appid="io.github.cairn-os.cairn" version="1.0.0" track="stable" machineid="m1"><ping active="1"/><updatecheck/></app></request>`,
		`<request protocol="3.0"><app appid="io.github.cairn-os.cairn" version="1.0.0" track="stable" machineid="m1"><event eventtype="3" eventresult="0" errorcode="44" previousversion="2.0.0"/></app></request>`,
		`<request protocol="3.0"><app appid="{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57}" machineid=""><updatecheck/></app><app appid="x"/></request>`,
		// Cairn's report: progress alone, pods with a check, a rollback's tries.
		`<request protocol="3.0"><app appid="io.github.cairn-os.cairn" version="1.0.0" track="stable" machineid="m1" xmlns:cairn="https://github.com/cairn-os/cairn" ` +
			`cairn:op="UPDATE_STATUS_DOWNLOADING" cairn:step="download" cairn:progress="0.5"/></request>`,
		`<request protocol="3.0"><app appid="io.github.cairn-os.cairn" version="1.0.0" track="stable" machineid="m1"><ping/><updatecheck/>` +
			`<pods xmlns="https://github.com/cairn-os/cairn" total="3"><pod uuid="u" state="running"><podapp name="a" image="i"/></pod></pods></app></request>`,
		`<request protocol="3.0"><app appid="io.github.cairn-os.cairn" version="1.0.0" track="stable" machineid="m1" xmlns:c="https://github.com/cairn-os/cairn">` +
			`<event eventtype="3" eventresult="0" errorcode="44" previousversion="2.0.0" c:triesdone="3" c:triesleft="0"/></app></request>`,
	} {
		f.Add([]byte(s))
	}
	c := consoletest.Start(f, consoletest.Options{})
	p := rollout.DefaultPolicy()
	p.HaltErrors = 1
	c.Group("stable", p)
	path := consoletest.BuildPayload(f, "2.0.0", "amd64-usr", c.Key, nil)
	c.Publish("stable", path)
	os.Remove(path)
	h := c.Server.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/update/", bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusBadRequest:
			if _, err := omaha.ParseRequest(bytes.NewReader(body)); err == nil {
				t.Fatalf("a request that parses was refused: %s", rec.Body)
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		req, err := omaha.ParseRequest(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("answered a request that does not parse: %v", err)
		}
		resp, err := omaha.ParseResponse(rec.Body)
		if err != nil {
			t.Fatalf("response does not parse: %v", err)
		}
		if len(resp.Apps) != len(req.Apps) {
			t.Fatalf("%d apps answered of %d", len(resp.Apps), len(req.Apps))
		}
		for i, a := range resp.Apps {
			if a.Status == omaha.StatusOK && len(a.Events) != len(req.Apps[i].Events) {
				t.Fatalf("app %d: %d events acknowledged of %d", i, len(a.Events), len(req.Apps[i].Events))
			}
		}
	})
}
