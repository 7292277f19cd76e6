package omaha

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
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
			MachineAlias: "node-1", OEMVersion: "0.1", AlephVersion: "0.9.0",
			Board: "amd64-usr", Ping: &PingRequest{Active: 1}, UpdateCheck: &UpdateCheck{},
			Events: []*EventRequest{{Type: EventTypeUpdateComplete, Result: EventResultSuccessReboot, PreviousVersion: "0.9.0"}}}}}
	b, err := Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<?xml`, `protocol="3.0"`, `appid="` + appID + `"`, `track="stable"`, `bootid="{b}"`,
		`machineid="m"`, `oem="qemu"`, `machinealias="node-1"`, `oemversion="0.1"`, `alephversion="0.9.0"`, `<updatecheck></updatecheck>`, `eventtype="3"`, `eventresult="2"`, `previousversion="0.9.0"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("request lacks %s:\n%s", want, b)
		}
	}
	back, err := ParseRequest(bytes.NewReader(b))
	if err != nil || back.Apps[0].Events[0].Type != EventTypeUpdateComplete || back.Apps[0].MachineAlias != "node-1" {
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

// FuzzParseResponse: whatever a server sends, a refusal is ErrMalformed (or the server's own
// error status), an accepted update has everything the download needs, and what the engine
// reads survives being written out and read back (the dev server and the tests write what
// the engine reads).
func FuzzParseResponse(f *testing.F) {
	for _, p := range []string{"testdata/response-update.xml", "testdata/response-noupdate.xml",
		"testdata/response-go-omaha.xml", "testdata/response-nebraska.xml"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`<response protocol="3.0"><app appid="a" status="ok"><updatecheck status="ok"/></app></response>`))
	f.Add([]byte(`<response protocol="3.0"><daystart elapsed_seconds="x"/><app appid="a" status="ok"><updatecheck status="ok"><urls><url codebase="http://x/"/></urls>` +
		`<manifest version="1"><packages><package name="p" size="1" hash_sha256="00"/></packages></manifest></updatecheck></app></response>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := ParseResponse(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal is not ErrMalformed: %v", err)
			}
			return
		}
		out, err := Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseResponse(bytes.NewReader(out))
		if err != nil || len(again.Apps) != len(resp.Apps) {
			t.Fatalf("written out, not read back: %v\n%s", err, out)
		}
		for i, a := range resp.Apps {
			u, err := a.FindUpdate()
			if err != nil && a.Status == StatusOK && a.UpdateCheck != nil && a.UpdateCheck.Status == StatusOK && !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal is not ErrMalformed: %v", err)
			}
			if err == nil && u != nil && (u.Size <= 0 || len(u.SHA256) != 64 || strings.ToLower(u.SHA256) != u.SHA256 || u.Name == "" ||
				!(strings.HasPrefix(u.URL, "http://") || strings.HasPrefix(u.URL, "https://"))) {
				t.Fatalf("incomplete update accepted: %+v", u)
			}
			u2, err2 := again.Apps[i].FindUpdate()
			if (err == nil) != (err2 == nil) || (u == nil) != (u2 == nil) || (u != nil && *u != *u2) {
				t.Fatalf("read back differently: %+v %v, then %+v %v\n%s", u, err, u2, err2, out)
			}
		}
	})
}

// FuzzParseRequest: a refusal is ErrMalformed, and an accepted request is written out and read
// back as the same request (the engine writes what the dev server reads).
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`<request protocol="3.0"><app appid="a" version="1" track="stable"><event eventtype="3" eventresult="2"/></app></request>`))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" ` +
		`installsource="scheduler" ismachine="1"><os version="Chateau" platform="CoreOS" sp="3815.2.0_x86_64"></os>` +
		`<app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="3815.2.0" track="stable" bootid="{b}" oem="qemu" oemversion="0.1" ` +
		`alephversion="3374.2.0" machineid="m" machinealias="node" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false">` +
		`<ping active="1" a="-1" r="-1"></ping><updatecheck></updatecheck><event eventtype="3" eventresult="2" previousversion="0.0.0.0"></event></app></request>`))
	f.Add([]byte(`<request protocol="3.0"><app appid="a"><event eventtype="3" eventresult="0" errorcode="2147483692"/></app></request>`))
	// Cairn's report, under its own prefix and under another.
	f.Add([]byte(`<request protocol="3.0"><app appid="a" xmlns:cairn="` + Namespace + `" cairn:op="UPDATE_STATUS_DOWNLOADING" cairn:step="download" ` +
		`cairn:progress="0.42"><pods xmlns="` + Namespace + `" total="2"><pod uuid="u" state="running"><podapp name="n" image="i" state="running"/></pod></pods>` +
		`<event eventtype="3" eventresult="0" errorcode="44" previousversion="2.0.0" cairn:triesdone="3"/></app></request>`))
	f.Add([]byte(`<request protocol="3.0"><app appid="a" xmlns:x="` + Namespace + `" x:progress="1"><x:pods total="0"/></app></request>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal is not ErrMalformed: %v", err)
			}
			return
		}
		out, err := Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRequest(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("written out, not read back: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(req.Apps, again.Apps) {
			t.Fatalf("read back differently:\n%#v\n%#v\n%s", req.Apps, again.Apps, out)
		}
	})
}

// What real servers send: go-omaha's server puts a base64 SHA-256 in hash_sha256 and upper-case
// GUIDs in appid; Nebraska, for a package of type Flatcar, a SHA-1 on the package and the
// SHA-256 on the postinstall action, under a product id.
func TestParseRealServers(t *testing.T) {
	want := Update{Version: "2.0.0", Name: "2.0.0.cairn", Size: 1234, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
	for _, c := range []struct{ file, app, url string }{
		{"testdata/response-go-omaha.xml", appID, "http://127.0.0.1:8000/packages/2.0.0.cairn"},
		{"testdata/response-nebraska.xml", "io.github.cairn-os.cairn", "https://nebraska.example/packages/2.0.0.cairn"},
	} {
		b, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ParseResponse(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		app, err := resp.App(c.app)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		u, err := app.FindUpdate()
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		w := want
		w.URL = c.url
		if *u != w {
			t.Errorf("%s: %+v\nwant %+v", c.file, *u, w)
		}
	}
}

func TestSameApp(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{appID, appID, true},
		{appID, "e96281a6-d1af-4bde-9a0a-97b76e56dc57", true},
		{appID, "{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57}", true},
		{"io.github.cairn-os.cairn", "IO.GITHUB.CAIRN-OS.CAIRN", true},
		{appID, "{e96281a6-d1af-4bde-9a0a-97b76e56dc58}", false},
		{"{}", "", false},
		{"{", "", false},
	} {
		if got := SameApp(c.a, c.b); got != c.same {
			t.Errorf("SameApp(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestSHA256Forms(t *testing.T) {
	const hexSum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, in := range []string{hexSum, strings.ToUpper(hexSum), " " + hexSum + " ",
		"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
		"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="} {
		if got, err := sha256Hex(in); err != nil || got != hexSum {
			t.Errorf("sha256Hex(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "00", hexSum[:63], hexSum + "00", "2jmj7l5rSw0yVb/vlWAYkK/YBwk=", strings.Repeat("g", 64), "***"} {
		if got, err := sha256Hex(in); err == nil {
			t.Errorf("sha256Hex(%q) = %q, want an error", in, got)
		}
	}
}

// Every refusal names what was wrong: the element and the attribute.
func TestHostileAttributes(t *testing.T) {
	update := func(pkg, action, codebase string) string {
		return `<response protocol="3.0"><app appid="a" status="ok"><updatecheck status="ok"><urls><url codebase="` + codebase +
			`"/></urls><manifest version="2.0.0"><packages>` + pkg + `</packages><actions>` + action + `</actions></manifest></updatecheck></app></response>`
	}
	const goodSum = `hash_sha256="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="`
	for _, c := range []struct {
		name, body string
		parse      bool   // ParseResponse succeeds; FindUpdate refuses
		want       string // in the error
	}{
		{"size not a number", update(`<package name="p" size="big" `+goodSum+`/>`, "", "http://x/"), false, `package "p": attribute size="big"`},
		{"size beyond int64", update(`<package name="p" size="18446744073709551615" `+goodSum+`/>`, "", "http://x/"), false, `attribute size="18446744073709551615"`},
		{"size negative", update(`<package name="p" size="-1" `+goodSum+`/>`, "", "http://x/"), true, `package "p": size="-1"`},
		{"size missing", update(`<package name="p" `+goodSum+`/>`, "", "http://x/"), true, `package "p": size="0"`},
		{"no name", update(`<package size="5" `+goodSum+`/>`, "", "http://x/"), true, `package name=""`},
		{"sha256 garbage", update(`<package name="p" size="5" hash_sha256="zz"/>`, "", "http://x/"), true, `package "p": hash_sha256="zz"`},
		{"sha256 a SHA-1", update(`<package name="p" size="5" hash_sha256="2jmj7l5rSw0yVb/vlWAYkK/YBwk="/>`, "", "http://x/"), true, `hash_sha256="2jmj7l5rSw0yVb/vlWAYkK/YBwk="`},
		{"action sha256 garbage", update(`<package name="p" size="5"/>`, `<action event="postinstall" sha256="!"/>`, "http://x/"), true, `postinstall action: sha256="!"`},
		{"sha1 only", update(`<package name="p" size="5" hash="2jmj7l5rSw0yVb/vlWAYkK/YBwk="/>`, "", "http://x/"), true, `package "p" has no SHA-256`},
		{"codebase not http", update(`<package name="p" size="5" `+goodSum+`/>`, "", "file:///etc/"), true, `url codebase="file:///etc/"`},
		{"codebase empty", update(`<package name="p" size="5" `+goodSum+`/>`, "", ""), true, `url codebase=""`},
		{"no version", strings.Replace(update(`<package name="p" size="5" `+goodSum+`/>`, "", "http://x/"), `version="2.0.0"`, "", 1), true, `manifest version=""`},
		{"no manifest", `<response protocol="3.0"><app appid="a" status="ok"><updatecheck status="ok"><urls><url codebase="http://x/"/></urls></updatecheck></app></response>`, true, "without <manifest>"},
		{"no urls", `<response protocol="3.0"><app appid="a" status="ok"><updatecheck status="ok"></updatecheck></app></response>`, true, "without <urls>"},
		{"protocol", `<response protocol="2.0"></response>`, false, `response protocol="2.0"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := ParseResponse(strings.NewReader(c.body))
			if !c.parse {
				if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("ParseResponse: %v, want ErrMalformed naming %s", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u, err := resp.Apps[0].FindUpdate()
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("FindUpdate: %+v, %v; want ErrMalformed naming %s", u, err, c.want)
			}
		})
	}
}

// Attributes the engine does not use do not make an answer unreadable: update_engine's own
// test expects success for <daystart elapsed_seconds="x">.
func TestTolerantAttributes(t *testing.T) {
	body := `<response protocol="3.0" server="x"><daystart elapsed_seconds="x"/><app appid="a" status="ok"><updatecheck status="ok">` +
		`<urls><url codebase="http://x/"/></urls><manifest version="2.0.0"><packages><package name="p" size=" 5 " required="maybe"` +
		` hash_sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"><metadata>m</metadata></package></packages>` +
		`<actions><action event="postinstall" needsadmin="no" IsDelta="True" DisablePayloadBackoff="1" unknown="?"/></actions></manifest></updatecheck></app></response>`
	resp, err := ParseResponse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.DayStart == nil || resp.DayStart.ElapsedSeconds != "x" {
		t.Fatalf("daystart %+v", resp.DayStart)
	}
	u, err := resp.Apps[0].FindUpdate()
	if err != nil || u.Size != 5 {
		t.Fatalf("%+v %v", u, err)
	}
	act := resp.Apps[0].UpdateCheck.Manifest.Actions[0]
	if act.NeedsAdmin || !act.IsDelta || !act.DisablePayloadBackoff || resp.Apps[0].UpdateCheck.Manifest.Packages[0].Required {
		t.Fatalf("booleans %+v", act)
	}
}

func TestHostileRequests(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`<request protocol="3.0"><app appid="a"><event eventtype="three" eventresult="1"/></app></request>`, `attribute eventtype="three"`},
		{`<request protocol="3.0"><app appid="a"><event eventtype="3" eventresult=""/></app></request>`, `attribute eventresult=""`},
		{`<request protocol="3.0"><app appid="a"><event eventtype="3" eventresult="0" errorcode="0x2c"/></app></request>`, `attribute errorcode="0x2c"`},
		{`<request protocol="3.0" ismachine="yes"></request>`, `attribute ismachine="yes"`},
		{`<request protocol="3.0"><app appid="a"><ping active="on"/></app></request>`, `attribute active="on"`},
		{`<request protocol="1.0"></request>`, `request protocol="1.0"`},
	} {
		if _, err := ParseRequest(strings.NewReader(c.body)); err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrMalformed naming %s", c.body, err, c.want)
		}
	}
	// update_engine's flags in the high bits of an error code (2^31: dev mode) are a number.
	req, err := ParseRequest(strings.NewReader(`<request protocol="3.0"><app appid="a"><event eventtype="3" eventresult="0" errorcode="2147483692"/></app></request>`))
	if err != nil || req.Apps[0].Events[0].ErrorCode != 2147483692 {
		t.Fatalf("%+v %v", req, err)
	}
}

func TestEventKinds(t *testing.T) {
	for _, c := range []struct {
		ev   *EventRequest
		kind Kind
		text string
	}{
		{DownloadStarted(), KindDownloading, "downloading (13/1)"},
		{DownloadFinished(), KindDownloaded, "downloaded (14/1)"},
		{Installed(), KindInstalled, "installed (800/1)"},
		{&EventRequest{Type: EventTypeUpdateComplete, Result: EventResultSuccess}, KindInstalled, "installed (3/1)"},
		{Complete("1.0.0"), KindComplete, "complete (3/2), previous version 1.0.0"},
		{&EventRequest{Type: EventTypeUpdateComplete, Result: EventResultSuccessReboot}, KindNone, "update complete, success, rebooted (3/2)"},
		{&EventRequest{Type: EventTypeUpdateComplete, Result: EventResultSuccessReboot, PreviousVersion: "0.0.0.0"}, KindNone,
			"update complete, success, rebooted (3/2), previous version 0.0.0.0"},
		{Failed(ErrorCodePayloadPubKeyVerify), KindError, "error (3/0), error 18 (payload public key verification error)"},
		{RolledBack("2.0.0", 0, 0), KindError, "error (3/0), error 44 (rollback), previous version 2.0.0"},
		{RolledBack("2.0.0", 3, 0), KindError, "error (3/0), error 44 (rollback), previous version 2.0.0, 3 boot tries, 0 left"},
		{Failed(ErrorCodeUpdateIgnoredPerPolicy), KindError, "error (3/0), error 35 (update ignored per policy)"},
		{&EventRequest{Type: EventTypeUpdateDownloadStarted, Result: EventResultDeferred}, KindNone, "download started, deferred (13/9)"},
	} {
		if got := c.ev.Kind(); got != c.kind {
			t.Errorf("%+v: kind %q, want %q", c.ev, got, c.kind)
		}
		if got := c.ev.String(); got != c.text {
			t.Errorf("%+v: %q, want %q", c.ev, got, c.text)
		}
	}
}
