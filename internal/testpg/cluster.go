package testpg

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a throwaway PostgreSQL cluster of a test's own, beside the shared one:
// failover tests stop, promote and fence it, which they must never do to the server other
// tests share. It is made with postgresql-common's pg_createcluster (which .ci/services
// installs with PostgreSQL), trusts local TCP connections, and is dropped when the test
// ends, passed or failed.
type Cluster struct {
	Version string
	Name    string
	Port    int
	Dir     string // the data directory
}

// NewCluster creates and starts a cluster on a free port of 127.0.0.1. A machine without
// pg_createcluster fails the test: a failover test must not pass by not running.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c := create(t)
	c.ctl(t, "start")
	c.waitReady(t)
	return c
}

// NewStandby creates a streaming standby of c (pg_basebackup -R) and starts it.
func (c *Cluster) NewStandby(t testing.TB) *Cluster {
	t.Helper()
	s := create(t)
	// pg_createcluster made an empty cluster; the standby is a copy of the primary's.
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.Dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "su", "postgres", "-c", fmt.Sprintf("pg_basebackup -h 127.0.0.1 -p %d -U postgres -D %s -R -X stream", c.Port, s.Dir))
	s.ctl(t, "start")
	s.waitReady(t)
	return s
}

// AppName is the name a standby of this cluster replicates under (its cluster_name), as
// synchronous_standby_names lists it.
func (c *Cluster) AppName() string { return c.Version + "/" + c.Name }

// Addr is the cluster's "127.0.0.1:port".
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) }

// URL is a connection URL of database postgres on the cluster.
func (c *Cluster) URL() string {
	return "postgres://postgres@" + c.Addr() + "/postgres?sslmode=disable"
}

// SQL runs statements with psql as the superuser and returns what they print (unaligned,
// tuples only).
func (c *Cluster) SQL(t testing.TB, statements ...string) string {
	t.Helper()
	args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", "-d", "postgres"}
	for _, s := range statements {
		args = append(args, "-c", s)
	}
	return strings.TrimSpace(run(t, "psql", args...))
}

// Stop stops the cluster; mode is pg_ctl's (fast, immediate).
func (c *Cluster) Stop(t testing.TB, mode string) { t.Helper(); c.ctl(t, "stop", "-m", mode) }

// Start starts a stopped cluster and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.ctl(t, "start")
	c.waitReady(t)
}

// Promote makes a standby a primary and waits until it is out of recovery.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	c.ctl(t, "promote")
	deadline := time.Now().Add(30 * time.Second)
	for c.SQL(t, "SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			t.Fatalf("cluster %s still in recovery 30 s after promote", c.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func create(t testing.TB) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		t.Fatalf("pg_createcluster is not installed (postgresql-common; run .ci/services): %v", err)
	}
	c := &Cluster{Version: newestVersion(t), Name: "sessiond_" + randomHex(4), Port: freePort(t)}
	c.Dir = filepath.Join("/var/lib/postgresql", c.Version, c.Name)
	// Registered before the cluster exists, so that a half-made one is dropped too.
	t.Cleanup(func() {
		out, err := exec.Command("pg_dropcluster", "--stop", c.Version, c.Name).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "does not exist") {
			t.Errorf("pg_dropcluster %s %s: %v: %s", c.Version, c.Name, err, out)
		}
	})
	run(t, "pg_createcluster", c.Version, c.Name, "-p", strconv.Itoa(c.Port),
		"-o", "wal_level=replica", "-o", "fsync=off",
		"--", "--auth=trust")
	return c
}

func (c *Cluster) ctl(t testing.TB, action string, args ...string) {
	t.Helper()
	run(t, "pg_ctlcluster", append([]string{"--skip-systemctl-redirect", c.Version, c.Name, action}, args...)...)
}

func (c *Cluster) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("pg_isready", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port)).Run() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("cluster %s does not accept connections on %s", c.Name, c.Addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newestVersion(t testing.TB) string {
	t.Helper()
	entries, err := os.ReadDir("/usr/lib/postgresql")
	if err != nil || len(entries) == 0 {
		t.Fatalf("no PostgreSQL server under /usr/lib/postgresql (run .ci/services): %v", err)
	}
	var versions []int
	for _, e := range entries {
		if v, err := strconv.Atoi(e.Name()); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		t.Fatal("no PostgreSQL major version under /usr/lib/postgresql")
	}
	sort.Ints(versions)
	return strconv.Itoa(versions[len(versions)-1])
}

// freePort is a port nothing listens on now. Another process could take it before the
// cluster does; pg_createcluster then fails loudly.
func freePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

// FreeAddr is an address of 127.0.0.1 where nothing listens now: a server that is down.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitReplayed waits until standby has replayed everything c had written when called.
func (c *Cluster) WaitReplayed(t testing.TB, standby *Cluster) {
	t.Helper()
	lsn := c.SQL(t, "SELECT pg_current_wal_lsn()")
	deadline := time.Now().Add(30 * time.Second)
	for standby.SQL(t, fmt.Sprintf("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", lsn)) != "t" {
		if time.Now().After(deadline) {
			t.Fatalf("standby %s has not replayed %s within 30 s", standby.Name, lsn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
