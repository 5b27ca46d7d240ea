package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// These tests run the provider on throwaway clusters of their own (testpg.NewCluster):
// they fence, demote and starve the database, which the shared server must never see.

func probeWrite(t *testing.T, p *postgres.Provider) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return p.ProbeWrite(ctx)
}

// TestWriteProbeSaysWhyTheDatabaseCannotWrite: the probe readiness relies on tells a
// writable primary from a fenced one, a standby and one whose commits hang, each with its
// reason and spi.ErrUnavailable; a fence also refuses the writes that sessiond's BEGIN
// READ WRITE would otherwise pass, until a probe finds it lifted.
func TestWriteProbeSaysWhyTheDatabaseCannotWrite(t *testing.T) {
	primary := testpg.NewCluster(t)
	standby := primary.NewStandby(t)
	proxy := newProxy(t, primary.URL())
	p := open(t, spi.Config{postgres.OptURL: proxy.url, postgres.OptStatementTimeout: "1s"})
	if err := probeWrite(t, p); err != nil {
		t.Fatalf("ProbeWrite on a writable primary: %v", err)
	}

	t.Run("fenced read-only", func(t *testing.T) {
		primary.SQL(t, "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
		var err error
		waitFor(t, "the probe to see the fence", func() bool { err = probeWrite(t, p); return err != nil })
		if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), "default_transaction_read_only") {
			t.Fatalf("ProbeWrite on a fenced primary = %v, want spi.ErrUnavailable naming default_transaction_read_only", err)
		}
		_, err = p.Create(t.Context(), []*usersessions.UserSession{testSession("fenced")})
		if !errors.Is(err, spi.ErrUnavailable) {
			t.Fatalf("Create on a fenced primary = %v, want spi.ErrUnavailable", err)
		}
		primary.SQL(t, "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
		waitFor(t, "the probe to see the fence lifted", func() bool { return probeWrite(t, p) == nil })
		mustCreate(t, p, testSession("unfenced"))
	})

	t.Run("standby", func(t *testing.T) {
		primary.WaitReplayed(t, standby)
		proxy.Repoint(standby.Addr())
		defer proxy.Repoint(primary.Addr())
		var err error
		waitFor(t, "the probe to reach the standby", func() bool { err = probeWrite(t, p); return err != nil && !strings.Contains(err.Error(), "connection") })
		if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), "recovery") {
			t.Fatalf("ProbeWrite on a standby = %v, want spi.ErrUnavailable naming recovery", err)
		}
		_, err = p.Create(t.Context(), []*usersessions.UserSession{testSession("on-standby")})
		if !errors.Is(err, spi.ErrUnavailable) {
			t.Fatalf("Create on a standby = %v, want spi.ErrUnavailable", err)
		}
	})

	t.Run("synchronous standby gone", func(t *testing.T) {
		waitFor(t, "the provider to write on the primary again", func() bool { return probeWrite(t, p) == nil })
		mustCreate(t, p, testSession("touched-hung"))
		// A synchronous standby that never connects: every commit waits for it.
		primary.SQL(t, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'", "SELECT pg_reload_conf()")
		defer primary.SQL(t, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")
		var err error
		waitFor(t, "the probe to see commits hang", func() bool { err = probeWrite(t, p); return err != nil })
		if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), "did not commit within") {
			t.Fatalf("ProbeWrite with commits waiting = %v, want spi.ErrUnavailable saying the commit did not complete", err)
		}
		// A write ends at statement-timeout (1s), commit wait included, and says that its
		// outcome is unknown: the commit is local and may be applied, as here.
		started := time.Now()
		_, err = p.Create(context.Background(), []*usersessions.UserSession{testSession("hung")})
		took := time.Since(started)
		if !errors.Is(err, usersessions.ErrOutcomeUnknown) || !errors.Is(err, spi.ErrUnavailable) {
			t.Fatalf("Create with commits waiting = %v, want usersessions.ErrOutcomeUnknown (and spi.ErrUnavailable)", err)
		}
		if took < 900*time.Millisecond || took > 3*time.Second {
			t.Errorf("Create with commits waiting took %v, want about the statement timeout (1s)", took)
		}
		// PostgreSQL ends the wait of a cancelled commit with the commit applied locally: a
		// refusal would have been a lie.
		if got := primary.SQL(t, "SELECT count(*) FROM user_session WHERE id = 'hung'"); got != "1" {
			t.Errorf("the write of unknown outcome: %s rows on the primary, want 1 (applied locally)", got)
		}
		// A refresh's Touch is one statement, its own commit: the same holds of it.
		later := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		started = time.Now()
		_, err = p.Touch(context.Background(), []usersessions.Touch{{Session: testSession("touched-hung").Key(), LastRefresh: later, ExpiresAt: later.Add(time.Hour)}})
		took = time.Since(started)
		if !errors.Is(err, usersessions.ErrOutcomeUnknown) || !errors.Is(err, spi.ErrUnavailable) {
			t.Fatalf("Touch with commits waiting = %v, want usersessions.ErrOutcomeUnknown (and spi.ErrUnavailable)", err)
		}
		if took < 900*time.Millisecond || took > 3*time.Second {
			t.Errorf("Touch with commits waiting took %v, want about the statement timeout (1s)", took)
		}
		if got := primary.SQL(t, "SELECT last_refresh = '"+later.Format(time.RFC3339Nano)+"' FROM user_session WHERE id = 'touched-hung'"); got != "t" {
			t.Errorf("the touch of unknown outcome: moved on the primary = %s, want t (applied locally)", got)
		}
	})
}

// TestSeveralHostsLeadToTheWritableOne: a connection string naming a server that is down,
// a standby and the primary, in that order, with target_session_attrs=read-write, leads
// every connection to the primary, in the URL form and in the key=value form.
func TestSeveralHostsLeadToTheWritableOne(t *testing.T) {
	primary := testpg.NewCluster(t)
	standby := primary.NewStandby(t)
	down := testpg.FreeAddr(t)
	for _, tc := range []struct{ name, url string }{
		{"URL", "postgres://postgres@" + down + "," + standby.Addr() + "," + primary.Addr() + "/postgres?sslmode=disable&target_session_attrs=read-write"},
		{"key=value", fmt.Sprintf("host=127.0.0.1,127.0.0.1,127.0.0.1 port=%s,%d,%d user=postgres dbname=postgres sslmode=disable target_session_attrs=read-write",
			strings.TrimPrefix(down, "127.0.0.1:"), standby.Port, primary.Port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := open(t, spi.Config{postgres.OptURL: tc.url, postgres.OptMigrate: "true"})
			id := "multi-" + strings.ReplaceAll(tc.name, "=", "")
			mustCreate(t, p, testSession(id))
			if err := probeWrite(t, p); err != nil {
				t.Fatalf("ProbeWrite: %v", err)
			}
			if got := primary.SQL(t, "SELECT count(*) FROM user_session WHERE id = '"+id+"'"); got != "1" {
				t.Fatalf("the session written through %s is not on the primary (count %s)", tc.url, got)
			}
		})
	}
}

// TestFencedPrimaryIsLeftForTheWritableHost: with a multi-host connection string and
// target_session_attrs=read-write, a first server fenced read-only while it stays up (the
// old primary of a failover, the new one being the second server) is left: the probe that
// finds the fence drops the pool's connections, and the new ones skip it.
func TestFencedPrimaryIsLeftForTheWritableHost(t *testing.T) {
	oldPrimary, newPrimary := testpg.NewCluster(t), testpg.NewCluster(t)
	open(t, spi.Config{postgres.OptURL: newPrimary.URL()}) // the schema, as a promoted standby has it
	p := open(t, spi.Config{postgres.OptURL: "postgres://postgres@" + oldPrimary.Addr() + "," + newPrimary.Addr() +
		"/postgres?sslmode=disable&target_session_attrs=read-write"})
	mustCreate(t, p, testSession("before"))
	if got := oldPrimary.SQL(t, "SELECT count(*) FROM user_session WHERE id = 'before'"); got != "1" {
		t.Fatalf("the first write is not on the first server (count %s)", got)
	}

	oldPrimary.SQL(t, "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
	fenced := time.Now()
	waitFor(t, "the probe to see the fence", func() bool { return probeWrite(t, p) != nil })
	waitFor(t, "the probe to find the writable server", func() bool { return probeWrite(t, p) == nil })
	t.Logf("writable again %v after the fence", time.Since(fenced))
	mustCreate(t, p, testSession("after"))
	if got := newPrimary.SQL(t, "SELECT count(*) FROM user_session WHERE id = 'after'"); got != "1" {
		t.Fatalf("the write after the fence is not on the second server (count %s)", got)
	}
}
