package benchproc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		file    string
		want    Memory
		wantErr bool
	}{
		{file: "status", want: Memory{RSS: 1740 << 10, Peak: 5120 << 10}},
		{file: "status-kthread", wantErr: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseStatus(b)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "stat"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		line    string
		want    int64
		wantErr bool
	}{
		{name: "command name with spaces and parentheses", line: string(b), want: 731 + 269},
		{name: "no command name", line: "4242 sessiond S 1", wantErr: true},
		{name: "cut short", line: "4242 (sessiond) S 1 4242", wantErr: true},
		{name: "not a number", line: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a 2 0 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.line))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %d ticks, want %d", got, tc.want)
			}
		})
	}
}

func TestReadsOfThisProcess(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Errorf("memory of this process %+v: want 0 < RSS <= Peak", m)
	}
	if _, err := ReadMemory(-1); err == nil {
		t.Error("memory of pid -1: no error")
	}
	// A process that has ended, or never was, counts nothing.
	if got := CPUTime(-1); got != 0 {
		t.Errorf("CPU time of pid -1 = %s, want 0", got)
	}
}

func TestFormatLoadAvg(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0.52 1.10 2.00 3/456 7890\n", "0.52 1.10 2.00 (2 CPUs)"},
		{"0.52\n", "unknown"},
		{"", "unknown"},
	} {
		if got := formatLoadAvg([]byte(tc.in), 2); got != tc.want {
			t.Errorf("formatLoadAvg(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNewestMajor(t *testing.T) {
	got := newestMajor([]string{"/usr/lib/postgresql/15/bin/pgbench", "/usr/lib/postgresql/9.6/bin/pgbench", "/usr/lib/postgresql/17/bin/pgbench", "/usr/lib/postgresql/16/bin/pgbench"})
	if want := "/usr/lib/postgresql/17/bin/pgbench"; got != want {
		t.Errorf("newestMajor = %s, want %s", got, want)
	}
}

func TestPgEnv(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want []string
	}{
		{"postgres://postgres@127.0.0.1:5432/sessiond_test?sslmode=disable",
			[]string{"PGHOST=127.0.0.1", "PGPORT=5432", "PGUSER=postgres", "PGSSLMODE=disable", "PGDATABASE=bench"}},
		{"postgres://u:p%40ss@db.example/x", []string{"PGHOST=db.example", "PGUSER=u", "PGPASSWORD=p@ss", "PGDATABASE=bench"}},
	} {
		got, err := pgEnv(tc.url, "bench")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("pgEnv(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
	if _, err := pgEnv("postgres://[::1", "bench"); err == nil {
		t.Error("a URL that does not parse: no error")
	}
}

func TestSchemaURL(t *testing.T) {
	got, err := SchemaURL("postgres://postgres@127.0.0.1:5432/sessiond_test?sslmode=disable&search_path=old", "bench_x")
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://postgres@127.0.0.1:5432/sessiond_test?search_path=bench_x&sslmode=disable"; got != want {
		t.Errorf("SchemaURL = %s, want %s", got, want)
	}
}

func TestLineSplitter(t *testing.T) {
	var got []string
	s := &lineSplitter{to: func(b []byte) { got = append(got, string(b)) }}
	for _, w := range []string{"one\ntw", "o", "\n\nthree\nfo", "ur"} {
		if n, err := s.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	s.flush()
	if want := []string{"one", "two", "", "three", "four"}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}

func TestProcessLinesAndEarlyEnd(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var lines []string
	p, err := Start(exec.Command("sh", "-c", "echo out; echo first >&2; echo last >&2; exit 3"), filepath.Join(dir, "log"), func(b []byte) {
		mu.Lock()
		lines = append(lines, string(b))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(context.Background(), Loopback{ManagementPort: port}.ReadyURL(), time.Minute, EveryInterval(10*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "ended before it was ready") || !strings.Contains(err.Error(), "last") {
		t.Errorf("WaitReady on a process that exits: %v, want its end and its log", err)
	}
	if p.Err() == nil {
		t.Error("exit 3: Err is nil")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"first", "last"}; !slices.Equal(lines, want) {
		t.Errorf("stderr lines %q, want %q", lines, want)
	}
	p.Stop() // ended: nothing to do
}

func TestProcessStopAndDescendants(t *testing.T) {
	p, err := Start(exec.Command("sh", "-c", "sleep 60 & wait"), filepath.Join(t.TempDir(), "log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	var kids []int
	for deadline := time.Now().Add(10 * time.Second); len(kids) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		kids = Descendants(p.Pid())
	}
	if len(kids) != 1 {
		t.Fatalf("descendants of sh running sleep: %v, want one", kids)
	}
	p.Stop()
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the process ended")
	}
	syscall.Kill(kids[0], syscall.SIGKILL) //nolint:errcheck // the orphaned sleep this test started
}

func TestExport(t *testing.T) {
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(repo, "a.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "a.txt")
	git("commit", "-q", "-m", "old")
	git("tag", "old")
	if err := os.WriteFile(filepath.Join(repo, "a.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "export")
	if err := Export(context.Background(), repo, "old", dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "old" {
		t.Errorf("exported a.txt = %q, %v; want the committed \"old\"", b, err)
	}
	if err := Export(context.Background(), repo, "no-such-rev", filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("Export of a revision that does not exist: no error")
	}
}
