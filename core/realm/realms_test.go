package realm

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
)

func TestRealms_lookup(t *testing.T) {
	acme := valid()
	acme.Clients[0].ID = "0b7c-uuid"
	rs, warnings, err := NewRealms(Demo("s"), acme)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err %v warnings %v", err, warnings)
	}
	tests := []struct {
		name          string
		realm, client string
		byID          bool
		found         bool
	}{
		{"client by clientId", "acme", "portal", false, true},
		{"client by internal id (admin API paths)", "acme", "0b7c-uuid", true, true},
		{"clientId is not an internal id when they differ", "acme", "portal", true, false},
		{"unknown client", "acme", "nope", false, false},
		{"unknown realm", "nope", "portal", false, false},
		{"demo realm's client", "demo", "demo-app", false, true},
	}
	snap := rs.Snapshot()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r *Realm
			var c *Client
			var ok bool
			if tc.byID {
				r, c, ok = snap.ClientByID(tc.realm, tc.client)
			} else {
				r, c, ok = rs.Client(tc.realm, tc.client)
			}
			if ok != tc.found {
				t.Fatalf("found %v, want %v", ok, tc.found)
			}
			if ok && (r.Name != tc.realm || c == nil) {
				t.Errorf("got realm %v client %v", r, c)
			}
		})
	}
	if list := rs.List(); len(list) != 2 || list[0].Name != "acme" || list[1].Name != "demo" {
		t.Errorf("List not sorted by name: %v", list)
	}
}

func TestRealms_replaceIsAllOrNothing(t *testing.T) {
	rs, _, err := NewRealms(Demo("s"))
	if err != nil {
		t.Fatal(err)
	}
	bad := valid()
	bad.Name = ""
	if _, err := rs.Replace(valid(), bad); !errors.Is(err, spi.ErrInvalid) {
		t.Fatalf("replace with an invalid realm: %v", err)
	}
	if _, err := rs.Replace(valid(), valid()); !errors.Is(err, spi.ErrInvalid) || !strings.Contains(err.Error(), "duplicate realm") {
		t.Fatalf("replace with a duplicate name: %v", err)
	}
	if _, ok := rs.Realm("demo"); !ok {
		t.Error("a failed replace changed the set")
	}
	if _, ok := rs.Realm("acme"); ok {
		t.Error("a failed replace added a realm")
	}
	// The warnings of a good replacement come back as data.
	warn := valid()
	warn.AccessTokenLifespan = time.Hour
	warnings, err := rs.Replace(warn)
	if err != nil || len(warnings) != 1 || warnings[0].Code != WarnAccessTokenAboveSSOIdle {
		t.Fatalf("err %v warnings %v", err, warnings)
	}
	if _, ok := rs.Realm("demo"); ok {
		t.Error("replace keeps realms it was not given")
	}
}

func TestRealms_putReplacesOneRealmAndLeavesOldSnapshotsAlone(t *testing.T) {
	rs, _, err := NewRealms(Demo("s"), valid())
	if err != nil {
		t.Fatal(err)
	}
	before := rs.Snapshot()
	old, _ := rs.Realm("acme")
	changed := old.Clone()
	changed.NotBefore = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	changed.Clients[0].RedirectURIs = append(changed.Clients[0].RedirectURIs, "https://new/*")
	if _, err := rs.Put(changed); err != nil {
		t.Fatal(err)
	}
	now, _ := rs.Realm("acme")
	if !now.NotBefore.Equal(changed.NotBefore) {
		t.Error("Put did not replace the realm")
	}
	if r, _ := before.Realm("acme"); !r.NotBefore.IsZero() || len(r.Clients[0].RedirectURIs) != 0 {
		t.Error("the old snapshot (and the original realm) changed")
	}
	if _, ok := rs.Realm("demo"); !ok {
		t.Error("Put dropped another realm")
	}
	bad := changed.Clone()
	bad.RefreshTokenMaxReuse = -1
	if _, err := rs.Put(bad); !errors.Is(err, spi.ErrInvalid) {
		t.Errorf("Put of an invalid realm: %v", err)
	}
	if r, _ := rs.Realm("acme"); r != now {
		t.Error("a failed Put changed the set")
	}
}

// Readers and writers at once; run with -race. Every read sees a complete realm: its
// two timeouts always agree because each version sets both to the same value.
func TestRealms_concurrentReadersSeeWholeVersions(t *testing.T) {
	rs, _, err := NewRealms(valid())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, c, ok := rs.Client("acme", "portal")
				if !ok || c == nil {
					errs <- fmt.Errorf("realm or client missing")
					return
				}
				if r.SSOSessionIdle != r.SSOSessionMax {
					errs <- fmt.Errorf("torn read: %s vs %s", r.SSOSessionIdle, r.SSOSessionMax)
					return
				}
			}
		})
	}
	for i := 1; i <= 200; i++ {
		r, _ := rs.Realm("acme")
		next := r.Clone()
		next.SSOSessionIdle, next.SSOSessionMax = time.Duration(i)*time.Hour, time.Duration(i)*time.Hour
		if _, err := rs.Put(next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRealms_zeroValueIsEmpty(t *testing.T) {
	var rs Realms
	if _, ok := rs.Realm("x"); ok || len(rs.List()) != 0 {
		t.Error("zero Realms is not empty")
	}
}

func TestSecret_brief_neverPrinted(t *testing.T) {
	c := Client{ClientID: "portal", Secret: "hunter2"}
	outputs := map[string]string{
		"%v":  fmt.Sprintf("%v", c),
		"%+v": fmt.Sprintf("%+v", c),
		"%#v": fmt.Sprintf("%#v", c),
		"%s":  fmt.Sprintf("%s", c.Secret),
		"%q":  fmt.Sprintf("%q", c.Secret),
		"%x":  fmt.Sprintf("%x", c.Secret),
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(b)
	for how, out := range outputs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("%s leaks the secret: %s", how, out)
		}
	}
	if c.Secret.Reveal() != "hunter2" || !c.Secret.Matches("hunter2") || c.Secret.Matches("hunter") {
		t.Error("Reveal/Matches")
	}
	if Secret("").Matches("") {
		t.Error("an empty secret must match nothing")
	}
}
