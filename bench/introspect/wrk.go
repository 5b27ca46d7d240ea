package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
)

var (
	wrkRate   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkErrors = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// load runs wrk against t with conns connections for c.dur and returns its requests per
// second. A non-2xx answer or a socket error other than a timeout fails the measurement.
func load(ctx context.Context, c config, t *target, conns int) (float64, error) {
	cmd := exec.CommandContext(ctx, c.wrk, "-t", strconv.Itoa(min(c.threads, conns)), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(c.dur.Seconds())), "--timeout", "5s", "-s", t.script, t.url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		return 0, fmt.Errorf("wrk: %s non-2xx answers\n%s", m[1], out)
	}
	if m := wrkErrors.FindSubmatch(out); m != nil && (string(m[1]) != "0" || string(m[2]) != "0" || string(m[3]) != "0") {
		return 0, fmt.Errorf("wrk: socket errors\n%s", out)
	}
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk: no Requests/sec in its output\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
