package omaha

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

const appID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"

func TestParseUpdateResponse(t *testing.T) {
	f, _ := os.Open("testdata/response-update.xml")
	defer f.Close()
	resp, err := ParseResponse(f)
	if err != nil {
		t.Fatal(err)
	}
	app, err := resp.App(appID)
	if err != nil {
		t.Fatal(err)
	}
	u, err := app.FindUpdate()
	if err != nil {
		t.Fatal(err)
	}
	want := Update{Version: "2.0.0", URL: "http://127.0.0.1:8000/payloads/stable/2.0.0.cairn", Name: "2.0.0.cairn",
		Size: 1234, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
	if *u != want {
		t.Fatalf("update %+v\nwant   %+v", *u, want)
	}
	// Without hash_sha256, the postinstall action's base64 sha256 is used (older servers).
	resp.Apps[0].UpdateCheck.Manifest.Packages[0].SHA256 = ""
	u, err = app.FindUpdate()
	if err != nil || u.SHA256 != want.SHA256 {
		t.Fatalf("fallback sha256 %v %v", u, err)
	}
}

func TestParseNoUpdate(t *testing.T) {
	f, _ := os.Open("testdata/response-noupdate.xml")
	defer f.Close()
	resp, err := ParseResponse(f)
	if err != nil {
		t.Fatal(err)
	}
	u, err := resp.Apps[0].FindUpdate()
	if u != nil || err != nil {
		t.Fatalf("noupdate gave %v %v", u, err)
	}
}

func TestRequestWireFormat(t *testing.T) {
	req := &Request{Protocol: Protocol, Version: "CairnUpdateEngine-1", IsMachine: 1, OS: &OS{Platform: "Cairn", Version: "1.0.0"},
		Apps: []*AppRequest{{ID: appID, Version: "1.0.0", Track: "stable", BootID: "{b}", MachineID: "m", OEM: "qemu",
			Board: "amd64-usr", Ping: &PingRequest{Active: 1}, UpdateCheck: &UpdateCheck{},
			Events: []*EventRequest{{Type: EventTypeUpdateComplete, Result: EventResultSuccessReboot, PreviousVersion: "0.9.0"}}}}}
	b, err := Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<?xml`, `protocol="3.0"`, `appid="` + appID + `"`, `track="stable"`, `bootid="{b}"`,
		`machineid="m"`, `oem="qemu"`, `<updatecheck></updatecheck>`, `eventtype="3"`, `eventresult="2"`, `previousversion="0.9.0"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("request lacks %s:\n%s", want, b)
		}
	}
	back, err := ParseRequest(bytes.NewReader(b))
	if err != nil || back.Apps[0].Events[0].Type != EventTypeUpdateComplete {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}

func TestHostileResponses(t *testing.T) {
	cases := map[string]string{
		"empty":          "",
		"not xml":        "HTTP/1.1 200 OK",
		"wrong protocol": `<response protocol="2.0"></response>`,
		"wrong root":     `<request protocol="3.0"></request>`,
		"charset":        `<?xml version="1.0" encoding="ISO-8859-1"?><response protocol="3.0"></response>`,
		"unclosed":       `<response protocol="3.0"><app>`,
		"huge":           `<response protocol="3.0">` + strings.Repeat(" ", MaxMessageSize) + `</response>`,
	}
	for name, body := range cases {
		if _, err := ParseResponse(strings.NewReader(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v, want ErrMalformed", name, err)
		}
	}
	// Parsed but unusable updatechecks.
	bad := []string{
		`<response protocol="3.0"><app appid="a" status="ok"><updatecheck status="ok"></updatecheck></app></response>`,
		`<response protocol="3.0"><app appid="a" status="ok"><updatecheck status="ok"><urls><url codebase="http://x/"/></urls><manifest version="1"><packages><package name="p" size="-1" hash_sha256="00"/></packages></manifest></updatecheck></app></response>`,
		`<response protocol="3.0"><app appid="a" status="error-unknownApplication"></app></response>`,
		`<response protocol="3.0"><app appid="a" status="ok"></app></response>`,
	}
	for _, body := range bad {
		resp, err := ParseResponse(strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if u, err := resp.Apps[0].FindUpdate(); err == nil {
			t.Errorf("accepted %s as %+v", body, u)
		}
	}
}

func TestClient(t *testing.T) {
	body, _ := os.ReadFile("testdata/response-noupdate.xml")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := ParseRequest(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL, HTTP: srv.Client()}
	resp, err := c.Do(context.Background(), &Request{Protocol: Protocol, Apps: []*AppRequest{{ID: appID}}})
	if err != nil || resp.Apps[0].UpdateCheck.Status != StatusNoUpdate {
		t.Fatalf("%v %+v", err, resp)
	}
	var he *HTTPError
	if _, err := c.Do(context.Background(), &Request{Protocol: "1.0"}); !errors.As(err, &he) || he.Status != 400 {
		t.Fatalf("bad request answered %v", err)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, p := range []string{"testdata/response-update.xml", "testdata/response-noupdate.xml"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`<response protocol="3.0"><app appid="a" status="ok"><updatecheck status="ok"/></app></response>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := ParseResponse(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, a := range resp.Apps {
			u, err := a.FindUpdate()
			if err == nil && u != nil && (u.Size <= 0 || len(u.SHA256) != 64 || u.URL == "") {
				t.Fatalf("incomplete update accepted: %+v", u)
			}
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`<request protocol="3.0"><app appid="a" version="1" track="stable"><event eventtype="3" eventresult="2"/></app></request>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if _, err := Marshal(req); err != nil {
			t.Fatal(err)
		}
	})
}
