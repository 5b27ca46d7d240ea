package revocation

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// staleStore answers every read with the records it holds, however old: a read that was
// overtaken by a later write.
type staleStore struct {
	Store
	recs []*usersessions.Record
}

func (s staleStore) GetRecords(context.Context, string, []string) ([]*usersessions.Record, error) {
	return s.recs, nil
}

func (s staleStore) ListRecords(context.Context, string) ([]*usersessions.Record, error) {
	return s.recs, nil
}

func policyRecord(key string, version int64, at time.Time) *usersessions.Record {
	return &usersessions.Record{Kind: RecordKind, Key: key, Version: version,
		Value: []byte(`{"notBefore":` + strconv.FormatInt(at.Unix(), 10) + `}`)}
}

// TestOlderVersionNeverOverwritesNewer: a record read or written before another landed (a
// lower version) does not take the policy back, whichever path brings it in: a Set's own
// result, a feed re-read or a reload.
func TestOlderVersionNeverOverwritesNewer(t *testing.T) {
	newer := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	older := newer.Add(-time.Hour)
	r := &realm.Realm{Name: "acme", Enabled: true, Clients: []*realm.Client{{ClientID: "app", Enabled: true, PublicClient: true}}}
	realms, _, err := realm.NewRealms(r)
	if err != nil {
		t.Fatal(err)
	}
	stale := []*usersessions.Record{policyRecord("acme", 1, older), policyRecord("acme/app", 3, older)}
	fresh := func(t *testing.T) *Policies {
		p := New(Deps{Store: staleStore{recs: stale}, Realms: realms})
		p.writeMu.Lock()
		p.applyLocked("acme", policyRecord("acme", 2, newer))
		p.applyLocked("acme/app", policyRecord("acme/app", 4, newer))
		p.writeMu.Unlock()
		return p
	}
	check := func(t *testing.T, p *Policies) {
		t.Helper()
		if got := p.Realm("acme"); !got.Equal(newer) {
			t.Errorf("realm policy %v after an older version came in, want the newer %v", got, newer)
		}
		if got := p.Client("acme", "app"); !got.Equal(newer) {
			t.Errorf("client policy %v after an older version came in, want the newer %v", got, newer)
		}
	}
	t.Run("apply", func(t *testing.T) {
		p := fresh(t)
		p.writeMu.Lock()
		p.applyLocked("acme", stale[0])
		p.applyLocked("acme/app", stale[1])
		p.writeMu.Unlock()
		check(t, p)
	})
	t.Run("feed re-read", func(t *testing.T) {
		p := fresh(t)
		for _, key := range []string{"acme", "acme/app"} {
			p.store = staleStore{recs: []*usersessions.Record{stale[0]}}
			if key == "acme/app" {
				p.store = staleStore{recs: []*usersessions.Record{stale[1]}}
			}
			if err := p.reread(t.Context(), key); err != nil {
				t.Fatal(err)
			}
		}
		check(t, p)
	})
	t.Run("reload", func(t *testing.T) {
		p := fresh(t)
		if err := p.reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		check(t, p)
	})
}
