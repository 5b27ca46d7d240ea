package benchproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Memory is a process's resident memory, from /proc/<pid>/status.
type Memory struct {
	RSS  int64 // VmRSS, bytes
	Peak int64 // VmHWM, the most it has been resident, bytes
}

// ReadMemory reads process pid's resident memory.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("resident memory needs Linux's /proc: %w", err)
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (Memory, error) {
	var m Memory
	var rss bool
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc status %s: %w", k, err)
		}
		if k == "VmRSS" {
			m.RSS, rss = kb<<10, true
		} else {
			m.Peak = kb << 10
		}
	}
	if !rss {
		return m, errors.New("/proc status has no VmRSS (a kernel thread, or a process that has ended)")
	}
	return m, nil
}

// userHZ is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on Linux.
const userHZ = 100

// CPUTime is the user and system CPU time the processes have used, from /proc/<pid>/stat;
// a process that has ended counts nothing.
func CPUTime(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		t, err := parseStat(b)
		if err != nil {
			continue
		}
		ticks += t
	}
	return time.Duration(ticks) * time.Second / userHZ
}

// parseStat is utime + stime of a /proc/<pid>/stat line, in ticks. The command name
// (field 2, in parentheses) may hold spaces and parentheses itself: the fields are
// counted from the last ')'.
func parseStat(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat utime: %w", err)
	}
	s, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc stat stime: %w", err)
	}
	return u + s, nil
}

// Descendants are the processes pid started, and theirs (from /proc/<pid>/task/*/children):
// sessiond's plugin processes.
func Descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(f); err == nil {
				out = append(out, child)
				out = append(out, Descendants(child)...)
			}
		}
	}
	return out
}

// LoadAvg is /proc/loadavg's first three figures and the number of CPUs, or "unknown":
// other work on the machine skews every figure a bench prints.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return formatLoadAvg(b, runtime.NumCPU())
}

func formatLoadAvg(b []byte, cpus int) string {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + fmt.Sprintf(" (%d CPUs)", cpus)
}
