package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// A request with Cairn's report: the attributes carry their namespace's prefix, the pods
// their default namespace, and it reads back as written.
func TestReportWireFormat(t *testing.T) {
	pods := BoundPods([]Pod{{UUID: "b-uuid", State: "exited"}, {UUID: "a-uuid", State: "running",
		Apps: []PodApp{{Name: "web", Image: "example.com/web:1.2", State: "running"}}}})
	req := &Request{Protocol: Protocol, Apps: []*AppRequest{{ID: appID, Version: "1.0.0", Track: "stable", MachineID: "m",
		Report: Report{Operation: "UPDATE_STATUS_DOWNLOADING", Step: "download", Progress: 0.425, Pods: pods},
		Events: []*EventRequest{RolledBack("2.0.0", 3, 0)}}}}
	b, err := Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`xmlns:cairn="` + Namespace + `"`, `cairn:op="UPDATE_STATUS_DOWNLOADING"`, `cairn:step="download"`,
		`cairn:progress="0.425"`, `<pods xmlns="` + Namespace + `" total="2">`, `<pod uuid="a-uuid" state="running"><podapp name="web" image="example.com/web:1.2" state="running"></podapp></pod><pod uuid="b-uuid" state="exited"></pod>`,
		`errorcode="44" previousversion="2.0.0" cairn:triesdone="3">`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("request lacks %s:\n%s", want, b)
		}
	}
	back, err := ParseRequest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Apps, req.Apps) {
		t.Fatalf("read back differently:\n%+v\n%+v", back.Apps[0], req.Apps[0])
	}
}

// nebraskaApp is the <app> as Nebraska's go-omaha types read it: attributes and elements of
// Omaha only, no catch-all. Cairn's report must leave what it reads unchanged.
type nebraskaApp struct {
	ID           string `xml:"appid,attr"`
	Version      string `xml:"version,attr,omitempty"`
	Track        string `xml:"track,attr,omitempty"`
	MachineID    string `xml:"machineid,attr,omitempty"`
	MachineAlias string `xml:"machinealias,attr,omitempty"`
	Ping         *struct {
		Active int `xml:"active,attr"`
	} `xml:"ping"`
	UpdateCheck *struct{} `xml:"updatecheck"`
	Events      []struct {
		Type            int    `xml:"eventtype,attr"`
		Result          int    `xml:"eventresult,attr"`
		ErrorCode       int    `xml:"errorcode,attr"`
		PreviousVersion string `xml:"previousversion,attr"`
	} `xml:"event"`
}

type nebraskaRequest struct {
	XMLName xml.Name       `xml:"request"`
	Apps    []*nebraskaApp `xml:"app"`
}

func TestReportIgnoredByOtherServers(t *testing.T) {
	app := &AppRequest{ID: appID, Version: "1.0.0", Track: "stable", MachineID: "m", MachineAlias: "node",
		Ping: &PingRequest{Active: 1}, UpdateCheck: &UpdateCheck{}, Events: []*EventRequest{RolledBack("2.0.0", 3, 0)}}
	read := func(a *AppRequest) *nebraskaApp {
		t.Helper()
		b, err := Marshal(&Request{Protocol: Protocol, Apps: []*AppRequest{a}})
		if err != nil {
			t.Fatal(err)
		}
		var r nebraskaRequest
		if err := xml.Unmarshal(b, &r); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		return r.Apps[0]
	}
	plain := read(app)
	with := *app
	with.Report = Report{Operation: "UPDATE_STATUS_FINALIZING", Step: "write-usr", Progress: 0.5,
		Pods: BoundPods([]Pod{{UUID: "u", State: "running", Apps: []PodApp{{Name: "app", Image: "img"}}}})}
	if got := read(&with); !reflect.DeepEqual(got, plain) {
		t.Fatalf("with the report:\n%+v\nwithout:\n%+v", got, plain)
	}
}

func TestHostileReports(t *testing.T) {
	app := func(attrs, inner string) string {
		return `<request protocol="3.0"><app appid="a" xmlns:c="` + Namespace + `" ` + attrs + `>` + inner + `</app></request>`
	}
	for _, c := range []struct{ body, want string }{
		{app(`c:progress="1.5"`, ""), `attribute progress="1.5"`},
		{app(`c:progress="NaN"`, ""), `attribute progress="NaN"`},
		{app(`c:progress="-0.1"`, ""), `attribute progress="-0.1"`},
		{app(`c:progress="half"`, ""), `attribute progress="half"`},
		{app("", `<c:pods total="many"/>`), `attribute total="many"`},
		{app("", `<event eventtype="3" eventresult="0" c:triesdone="x"/>`), `attribute triesdone="x"`},
	} {
		if _, err := ParseRequest(strings.NewReader(c.body)); err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrMalformed naming %s", c.body, err, c.want)
		}
	}
	// The same names outside the namespace are not Cairn's, and not read as its.
	req, err := ParseRequest(strings.NewReader(`<request protocol="3.0"><app appid="a" progress="x" step="s"><pods total="x"/></app></request>`))
	if err != nil || req.Apps[0].Report != (Report{}) {
		t.Fatalf("%+v %v", req, err)
	}
}

func TestFractionRound(t *testing.T) {
	for _, c := range []struct{ in, want Fraction }{{0, 0}, {0.12345, 0.123}, {0.9996, 1}, {1, 1}, {0.0004, 0}} {
		if got := c.in.Round(); got != c.want {
			t.Errorf("Round(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestBoundPods(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	many := make([]Pod, 100)
	for i := range many {
		many[i] = Pod{UUID: fmt.Sprintf("%036d", i), State: "running"}
	}
	manyApps := make([]PodApp, 20)
	for i := range manyApps {
		manyApps[i] = PodApp{Name: fmt.Sprint("app", i)}
	}
	for _, c := range []struct {
		name  string
		in    []Pod
		total int
		check func(*Pods) error
	}{
		{"empty", nil, 0, func(p *Pods) error {
			if len(p.Pods) != 0 {
				return fmt.Errorf("%d pods", len(p.Pods))
			}
			return nil
		}},
		{"running first, then by uuid", []Pod{{UUID: "c", State: "exited"}, {UUID: "b", State: "running"}, {UUID: "a", State: "garbage"},
			{UUID: "d", State: "prepared"}, {UUID: "a2", State: "running"}}, 5, func(p *Pods) error {
			var got []string
			for _, x := range p.Pods {
				got = append(got, x.UUID)
			}
			if s := strings.Join(got, " "); s != "a2 b d c a" {
				return fmt.Errorf("order %s", s)
			}
			return nil
		}},
		{"at most MaxPods", many, 100, func(p *Pods) error {
			if len(p.Pods) != MaxPods || p.Pods[0].UUID != many[0].UUID {
				return fmt.Errorf("%d pods, first %s", len(p.Pods), p.Pods[0].UUID)
			}
			return nil
		}},
		{"fields cut at a character, control characters dropped", []Pod{{UUID: "u\x00\n\x1b[31m", State: long,
			Apps: append([]PodApp{{Name: long, Image: "img\xff"}}, manyApps...)}}, 1, func(p *Pods) error {
			q := p.Pods[0]
			if q.UUID != "u[31m" || len(q.State) != MaxPodField || q.State != strings.Repeat("é", 64) || q.Apps[0].Image != "img" || len(q.Apps) != MaxPodApps {
				return fmt.Errorf("%+v", q)
			}
			return nil
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := BoundPods(c.in)
			if int(p.Total) != c.total {
				t.Errorf("total %d, want %d", p.Total, c.total)
			}
			if err := c.check(p); err != nil {
				t.Error(err)
			}
			if again := p.Bound(); !reflect.DeepEqual(again, p) {
				t.Errorf("bound again: %+v, was %+v", again, p)
			}
		})
	}
}

// The worst a runtime can list still encodes within MaxPodsBytes: fields of quotes, which
// escape six times their size.
func TestBoundPodsSize(t *testing.T) {
	q := strings.Repeat(`"`, 500)
	var pods []Pod
	for range 200 {
		p := Pod{UUID: q, State: q}
		for range 20 {
			p.Apps = append(p.Apps, PodApp{Name: q, Image: q, State: q})
		}
		pods = append(pods, p)
	}
	b, err := xml.Marshal(BoundPods(pods))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxPodsBytes {
		t.Fatalf("%d bytes encoded, more than %d", len(b), MaxPodsBytes)
	}
}

// FuzzBoundPods: whatever a runtime lists, the bounded list encodes within MaxPodsBytes,
// keeps the bounds, and bounding it again changes nothing.
func FuzzBoundPods(f *testing.F) {
	f.Add("uuid", "running", "app", "example.com/image:1", 3, 2)
	f.Add(`"&<>`, "\x00", "\xff\xfe", strings.Repeat("x", 300), 100, 10)
	f.Fuzz(func(t *testing.T, uuid, state, name, image string, pods, apps int) {
		pods, apps = min(max(pods, 0), 300), min(max(apps, 0), 30)
		var in []Pod
		for i := range pods {
			p := Pod{UUID: fmt.Sprint(uuid, i), State: state}
			for j := range apps {
				p.Apps = append(p.Apps, PodApp{Name: fmt.Sprint(name, j), Image: image, State: state})
			}
			in = append(in, p)
		}
		b := BoundPods(in)
		enc, err := xml.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) > MaxPodsBytes || len(b.Pods) > MaxPods || int(b.Total) != pods {
			t.Fatalf("%d bytes, %d pods of %d", len(enc), len(b.Pods), b.Total)
		}
		for _, p := range b.Pods {
			if len(p.Apps) > MaxPodApps || len(p.UUID) > MaxPodField {
				t.Fatalf("pod %+v", p)
			}
		}
		if again := b.Bound(); !reflect.DeepEqual(again, b) {
			t.Fatalf("bound again: %+v, was %+v", again, b)
		}
	})
}
