package main

import (
	"bytes"
	"regexp"
	"testing"
)

func TestReadKeepsPackagesAndTopLevelTests(t *testing.T) {
	r, err := readFile("testdata/base.json", "github.com/sessiond/sessiond/")
	if err != nil {
		t.Fatal(err)
	}
	want := run{
		"cmd/sessiond":           {"fail", 12.5},
		"cmd/sessiond.TestSlow":  {"pass", 10},
		"cmd/sessiond.TestFlaky": {"fail", 2},
	}
	if len(r) != len(want) {
		t.Errorf("read %v, want %v (subtests and non-JSON lines left out)", r, want)
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %+v, want %+v", k, r[k], v)
		}
	}
}

func TestSpreadIsMinMedianMax(t *testing.T) {
	runs := []run{{"p": {"pass", 3}}, {"p": {"fail", 1}}, {"p": {"pass", 8}}, {"p": {"pass", 4}}}
	s := spreadOf(runs, "p")
	if s.min != 1 || s.med != 3.5 || s.max != 8 || s.n != 4 || s.failed != 1 {
		t.Errorf("spread = %+v, want min 1 median 3.5 max 8 of 4, 1 failed", s)
	}
	if s := spreadOf(runs[:3], "p"); s.med != 3 {
		t.Errorf("median of 3, 1, 8 = %v, want 3", s.med)
	}
}

func TestReportRatioOfMedians(t *testing.T) {
	read := func(p string) run {
		r, err := readFile(p, "github.com/sessiond/sessiond/")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var out bytes.Buffer
	report(&out, []run{read("testdata/base.json")}, []run{read("testdata/changed.json")}, 0)
	for _, want := range []string{
		`(?m)^cmd/sessiond +12\.5 +12\.5 +12\.5 1F +6\.2 +6\.2 +6\.2 0\.50$`,
		`(?m)^cmd/sessiond\.TestSlow +10\.0 +10\.0 +10\.0 +5\.0 +5\.0 +5\.0 0\.50$`,
		`(?m)^cmd/sessiond\.TestFlaky +2\.0 +2\.0 +2\.0 1F +1\.0 +1\.0 +1\.0 0\.50$`,
	} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("report has no line matching %s:\n%s", want, out.String())
		}
	}
	if bytes.Index(out.Bytes(), []byte("TestSlow")) > bytes.Index(out.Bytes(), []byte("TestFlaky")) {
		t.Errorf("the slowest test is not first:\n%s", out.String())
	}
}
