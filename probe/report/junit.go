package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// JUnit XML, as CI systems read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string `xml:"name,attr"`
	Hostname  string `xml:"hostname,attr,omitempty"`
	Timestamp string `xml:"timestamp,attr,omitempty"`
	// Properties carry the config the run planned from.
	Properties *junitProperties `xml:"properties,omitempty"`
	Tests      int              `xml:"tests,attr"`
	Failures   int              `xml:"failures,attr"`
	Skipped    int              `xml:"skipped,attr"`
	Time       string           `xml:"time,attr"`
	Cases      []junitCase      `xml:"testcase"`
}

type junitProperties struct {
	Property []junitProperty `xml:"property"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// uniqueCaseNames numbers the test cases of a suite whose class and name
// repeat ("name (2)"), so that CI systems keep each one.
func uniqueCaseNames(cases []junitCase) {
	seen := map[string]int{}
	for i := range cases {
		k := cases[i].Classname + "\x00" + cases[i].Name
		seen[k]++
		if n := seen[k]; n > 1 {
			cases[i].Name = fmt.Sprintf("%s (%d)", cases[i].Name, n)
		}
	}
}

// traceText is the trace of target id as text, "" when there is none.
func (r *Check) traceText(id string) string {
	tr, ok := r.traces[id]
	if !ok {
		return ""
	}
	var b strings.Builder
	ew := &errWriter{w: &b}
	writeTraceBody(ew, tr, "")
	return b.String()
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// WriteJUnit writes the report as JUnit XML: a test suite per product, a
// test case per target and per flow not checked. A failing optional flow
// is a skipped case unless optional flows fail the run.
func (r *Check) WriteJUnit(w io.Writer) error {
	all := junitSuites{Name: "flowprobe check"}
	var total time.Duration
	suites := map[string]*junitSuite{}
	suiteTime := map[string]time.Duration{}
	var order []string
	suite := func(product string) *junitSuite {
		s, ok := suites[product]
		if !ok {
			s = &junitSuite{Name: product, Hostname: r.Header.Host}
			if !r.Header.Time.IsZero() {
				s.Timestamp = r.Header.Time.UTC().Format("2006-01-02T15:04:05")
			}
			if r.Header.Config != "" {
				s.Properties = &junitProperties{Property: []junitProperty{{Name: "config", Value: r.Header.Config}}}
			}
			suites[product] = s
			order = append(order, product)
		}
		return s
	}
	for i, t := range r.targets {
		res := r.results[i]
		s := suite(t.Product)
		tc := junitCase{
			Name:      fmt.Sprintf("%s %s → %s %s (%s)", t.Flow, t.Source, t.Address(), portProto(t), t.Check),
			Classname: t.Product + "." + t.Destination,
			Time:      seconds(res.Duration),
		}
		msg := res.Outcome.String()
		if e := note(t, res); e != "" {
			msg += ": " + Sanitize(e)
		}
		switch {
		case res.Success:
			tc.SystemOut = msg
		case r.counts(t):
			tc.Failure = &junitMessage{Message: msg, Type: res.Outcome.String(), Text: Sanitize(res.Error())}
			tc.SystemOut = r.traceText(t.ID)
			s.Failures++
		default:
			tc.Skipped = &junitMessage{Message: "optional flow failed: " + msg, Text: Sanitize(res.Error())}
			tc.SystemOut = r.traceText(t.ID)
			s.Skipped++
		}
		s.Tests++
		total += res.Duration
		suiteTime[t.Product] += res.Duration
		s.Cases = append(s.Cases, tc)
	}
	for _, sk := range r.skipped {
		s := suite(sk.Product)
		name := fmt.Sprintf("%s %s → %s", sk.Flow, sk.Source, sk.Destination)
		if sk.Host != "" {
			name += " " + sk.Host
		}
		if sk.Port != "" {
			name += " port " + sk.Port
		}
		s.Cases = append(s.Cases, junitCase{
			Name:      name,
			Classname: sk.Product + "." + sk.Destination,
			Time:      "0.000",
			Skipped:   &junitMessage{Message: sk.Reason},
		})
		s.Tests++
		s.Skipped++
	}
	for _, name := range order {
		s := suites[name]
		uniqueCaseNames(s.Cases)
		s.Time = seconds(suiteTime[name])
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Skipped += s.Skipped
		all.Suites = append(all.Suites, *s)
	}
	all.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
