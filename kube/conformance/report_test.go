package conformance

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// header and footer frame test cases as Ginkgo's JUnit reporter writes them.
const (
	header = `<?xml version="1.0" encoding="UTF-8"?>
  <testsuites tests="4" disabled="1" errors="0" failures="1" time="12.5">
      <testsuite name="Kubernetes e2e suite" package="/tmp" tests="4" disabled="0" skipped="1" errors="0" failures="1" time="12.5" timestamp="2026-12-07T03:00:00">
          <properties>
              <property name="SuiteSucceeded" value="false"></property>
          </properties>
`
	footer = `      </testsuite>
  </testsuites>
`
)

func TestReadJUnit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cases string
		want  *Report
		err   error
	}{{
		name: "passed",
		cases: `<testcase name="[It] [sig-node] Pods should get a host IP [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" status="passed" time="4.25"></testcase>
<testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="1.5"></testcase>`,
		want: &Report{Specs: []Spec{{Name: "[sig-node] Pods should get a host IP [NodeConformance] [Conformance]", State: Passed, Time: 4250 * time.Millisecond}}},
	}, {
		name: "failed, as the e2e framework writes it: no message attribute",
		cases: `<testcase name="[It] [sig-node] Probing container should be restarted [NodeConformance]" classname="Kubernetes e2e suite" status="failed" time="60">
  <failure message="" type="failed">[FAILED] pod never restarted: restart count 0
expected 1
In [It] at: k8s.io/kubernetes/test/e2e/common/node/container_probe.go:1000 @ 12/07/26 03:00:00.000
</failure>
  <system-err>timeline</system-err>
</testcase>`,
		want: &Report{Specs: []Spec{{Name: "[sig-node] Probing container should be restarted [NodeConformance]", State: Failed,
			Reason: "pod never restarted: restart count 0", Message: "pod never restarted: restart count 0\nexpected 1", Time: time.Minute}}},
	}, {
		name: "timed out",
		cases: `<testcase name="[It] [sig-node] slow [NodeConformance]" status="timedout" time="1">
  <failure message="" type="timedout">[TIMEDOUT] A suite timeout occurred
In [It] at: x.go:1 @ 12/07/26 03:00:00.000
</failure></testcase>`,
		want: &Report{Specs: []Spec{{Name: "[sig-node] slow [NodeConformance]", State: Failed,
			Reason: "A suite timeout occurred", Message: "A suite timeout occurred", Time: time.Second}}},
	}, {
		name: "panicked, with Ginkgo's own message",
		cases: `<testcase name="[It] [sig-node] p [NodeConformance]" status="panicked" time="0">
  <error message="runtime error: nil pointer" type="panicked">[PANICKED] Test Panicked
In [It] at: x.go:1</error></testcase>`,
		want: &Report{Specs: []Spec{{Name: "[sig-node] p [NodeConformance]", State: Failed,
			Reason: "runtime error: nil pointer", Message: "runtime error: nil pointer"}}},
	}, {
		name: "skipped at run time, and left out by the focus",
		cases: `<testcase name="[It] [sig-node] AppArmor load [NodeConformance]" status="skipped" time="0.1">
  <skipped message="skipped - Only supported for node OS distro [gci ubuntu] (not debian)"></skipped></testcase>
<testcase name="[It] [sig-apps] Deployment works [Conformance]" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
<testcase name="[It] [sig-apps] Job works [Conformance]" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>`,
		want: &Report{LeftOut: []string{"[sig-apps] Deployment works [Conformance]", "[sig-apps] Job works [Conformance]"}, Specs: []Spec{{Name: "[sig-node] AppArmor load [NodeConformance]", State: Skipped,
			Reason: "Only supported for node OS distro [gci ubuntu] (not debian)", Message: "Only supported for node OS distro [gci ubuntu] (not debian)",
			Time: 100 * time.Millisecond}}},
	}, {
		name: "a suite node failed; specs sorted by name",
		cases: `<testcase name="[It] b" status="passed" time="0"></testcase>
<testcase name="[It] a" status="passed" time="0"></testcase>
<testcase name="[SynchronizedBeforeSuite]" status="failed" time="600">
  <failure message="" type="failed">[FAILED] kube-system pods not ready
In [SynchronizedBeforeSuite] at: e2e.go:1</failure></testcase>`,
		want: &Report{
			Specs:      []Spec{{Name: "a", State: Passed}, {Name: "b", State: Passed}},
			SuiteNodes: []Spec{{Name: "[SynchronizedBeforeSuite]", State: Failed, Reason: "kube-system pods not ready", Message: "kube-system pods not ready", Time: 10 * time.Minute}},
		},
	}, {
		name: "a long first line is cut",
		cases: `<testcase name="[It] long" status="failed" time="0"><failure type="failed">[FAILED] ` + strings.Repeat("é", 150) + `
In [It] at: x.go:1</failure></testcase>`,
		want: &Report{Specs: []Spec{{Name: "long", State: Failed, Reason: strings.Repeat("é", 100) + "…", Message: strings.Repeat("é", 150)}}},
	}, {
		name:  "no cases",
		cases: "",
		err:   ErrNoSpecs,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadJUnit(strings.NewReader(header + tc.cases + footer))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReadJUnitRefuses(t *testing.T) {
	for _, in := range []string{
		"not xml",
		`<testsuite></testsuite>`,
		header + `<testcase name="[It] x" status="weird"></testcase>` + footer,
	} {
		if _, err := ReadJUnit(strings.NewReader(in)); err == nil {
			t.Errorf("ReadJUnit(%.40q) accepted it", in)
		}
	}
}

func TestSkipLeftOut(t *testing.T) {
	rep := &Report{LeftOut: []string{"x guaranteed restart", "y other", "z guaranteed restart", "unfocused guaranteed restart"},
		Specs: []Spec{{Name: "a", State: Passed}, {Name: "y2", State: Passed}}}
	rep.SkipLeftOut(regexp.MustCompile(`^[xyz]`), regexp.MustCompile(`guaranteed restart`), "no -997 here")
	want := &Report{LeftOut: []string{"y other", "unfocused guaranteed restart"}, Specs: []Spec{
		{Name: "a", State: Passed},
		{Name: "x guaranteed restart", State: Skipped, Reason: "no -997 here", Message: "no -997 here"},
		{Name: "y2", State: Passed},
		{Name: "z guaranteed restart", State: Skipped, Reason: "no -997 here", Message: "no -997 here"},
	}}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("SkipLeftOut:\n got %+v\nwant %+v", rep, want)
	}
}

func TestSummary(t *testing.T) {
	rep := &Report{LeftOut: make([]string, 500), Specs: []Spec{
		{Name: "a [NodeConformance]", State: Passed},
		{Name: "b [Conformance]", State: Failed, Reason: "x | y"},
		{Name: "c", State: Skipped, Reason: "no AppArmor"},
		{Name: "d", State: Passed},
	}}
	want := `4 specs in 1m30s: 2 passed, 1 failed, 1 skipped (500 not run)

| failed | why |
|---|---|
| b [Conformance] | x \| y |

| skipped | why |
|---|---|
| c | no AppArmor |
`
	if got := Summary(rep, 90*time.Second); got != want {
		t.Errorf("Summary:\n%s\nwant:\n%s", got, want)
	}
}
