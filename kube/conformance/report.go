package conformance

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// State is a spec's outcome.
type State string

const (
	Passed  State = "passed"
	Failed  State = "failed"
	Skipped State = "skipped"
)

// Spec is one spec of the run.
type Spec struct {
	Name  string // the spec's full text, with its [tags]
	State State
	// Reason is the first line of the failure or the skip's message (at most maxReason
	// bytes); Message all of it.
	Reason, Message string
	Time            time.Duration
}

// Report is what a run of the suite did: the specs it selected, and the suite's own nodes
// (BeforeSuite, AfterSuite, ReportAfterSuite) that failed, which fail every spec with them.
type Report struct {
	Specs      []Spec
	SuiteNodes []Spec
	// LeftOut names the specs the focus or the skips left out, and those an interrupted run
	// never reached.
	LeftOut []string
}

// Count returns how many selected specs are in state s.
func (r *Report) Count(s State) int {
	n := 0
	for _, sp := range r.Specs {
		if sp.State == s {
			n++
		}
	}
	return n
}

// junit is the part of Ginkgo's JUnit report (reporters.JUnitTestSuites) read here.
type junit struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []struct {
		Cases []struct {
			Name    string  `xml:"name,attr"`
			Status  string  `xml:"status,attr"`
			Time    float64 `xml:"time,attr"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			Failure *junitProblem `xml:"failure"`
			Error   *junitProblem `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitProblem struct {
	Message     string `xml:"message,attr"`
	Type        string `xml:"type,attr"`
	Description string `xml:",chardata"`
}

// ErrNoSpecs is a report without a single spec: the suite did not get to run any.
var ErrNoSpecs = errors.New("the report has no spec")

// ReadJUnit reads the JUnit report e2e.test writes into its --report-dir (junit_01.xml).
// Ginkgo names each case "[NodeType] full text": specs are [It]; a skipped [It] with the bare
// message "skipped" is one the focus left out, one skipped at run time says why after
// "skipped - ".
func ReadJUnit(r io.Reader) (*Report, error) {
	var j junit
	if err := xml.NewDecoder(r).Decode(&j); err != nil {
		return nil, fmt.Errorf("JUnit report: %w", err)
	}
	rep := &Report{}
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			name, isSpec := strings.CutPrefix(c.Name, "[It] ")
			sp := Spec{Name: name, Time: time.Duration(c.Time * float64(time.Second))}
			switch {
			case c.Skipped != nil:
				msg, ok := strings.CutPrefix(c.Skipped.Message, "skipped - ")
				if !ok {
					// Left out by the focus, never reached, or pending.
					if isSpec {
						rep.LeftOut = append(rep.LeftOut, name)
					}
					continue
				}
				sp.State, sp.Message = Skipped, msg
			case c.Failure != nil, c.Error != nil:
				p := c.Failure
				if p == nil {
					p = c.Error
				}
				sp.State, sp.Message = Failed, failureMessage(p)
			case c.Status == "passed":
				sp.State = Passed
			default:
				return nil, fmt.Errorf("JUnit report: case %q: status %q without a failure or skip", c.Name, c.Status)
			}
			sp.Reason = firstLine(sp.Message)
			if isSpec {
				rep.Specs = append(rep.Specs, sp)
			} else if sp.State == Failed {
				sp.Name = c.Name
				rep.SuiteNodes = append(rep.SuiteNodes, sp)
			}
		}
	}
	if len(rep.Specs) == 0 && len(rep.LeftOut) == 0 && len(rep.SuiteNodes) == 0 {
		return nil, ErrNoSpecs
	}
	slices.SortFunc(rep.Specs, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	return rep, nil
}

// SkipLeftOut reports every left-out spec that the run's focus selects and its skip re names
// as skipped, for why: Ginkgo's report does not tell the specs --skip left out from those the
// focus did.
func (r *Report) SkipLeftOut(focus, re *regexp.Regexp, why string) {
	kept := r.LeftOut[:0]
	for _, name := range r.LeftOut {
		if !focus.MatchString(name) || !re.MatchString(name) {
			kept = append(kept, name)
			continue
		}
		r.Specs = append(r.Specs, Spec{Name: name, State: Skipped, Reason: why, Message: why})
	}
	r.LeftOut = kept
	slices.SortFunc(r.Specs, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
}

// failureMessage is a failure's text without Ginkgo's frame: the e2e framework leaves the
// message attribute empty and writes "[FAILED] message\nIn [It] at: file:line @ time" (or
// [TIMEDOUT], [PANICKED], [INTERRUPTED]) as the element's text.
func failureMessage(p *junitProblem) string {
	if p.Message != "" {
		return strings.TrimSpace(p.Message)
	}
	d := strings.TrimSpace(p.Description)
	if strings.HasPrefix(d, "[") {
		if i := strings.Index(d, "] "); i > 0 && !strings.ContainsAny(d[1:i], " \n") {
			d = d[i+2:]
		}
	}
	if i := strings.Index(d, "\nIn ["); i >= 0 {
		d = d[:i]
	}
	if d == "" {
		return p.Type
	}
	return strings.TrimSpace(d)
}

// maxReason keeps a reason to a line of a table.
const maxReason = 200

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "") + "…"
	}
	return s
}

// Summary is the run in Markdown: the counts, then each failed and skipped spec with why.
func Summary(rep *Report, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d specs in %s: %d passed, %d failed, %d skipped (%d not run)\n",
		len(rep.Specs), took, rep.Count(Passed), rep.Count(Failed), rep.Count(Skipped), len(rep.LeftOut))
	for _, st := range []State{Failed, Skipped} {
		if rep.Count(st) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n| %s | why |\n|---|---|\n", st)
		for _, sp := range rep.Specs {
			if sp.State == st {
				fmt.Fprintf(&b, "| %s | %s |\n", mdCell(sp.Name), mdCell(sp.Reason))
			}
		}
	}
	return b.String()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
