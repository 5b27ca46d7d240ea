package logonly

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

func TestPushReportsEveryNoticeUndelivered(t *testing.T) {
	tests := []struct {
		name       string
		notice     revocationpush.Notice
		wantTarget string
	}{
		{"not-before to admin URL", revocationpush.Notice{ID: "d1", Action: revocationpush.PushNotBefore, RealmID: "r", ClientID: "app", AdminURL: "https://app/admin", NotBefore: time.Unix(1700000000, 0), Token: "secret.jws.token"}, "https://app/admin"},
		{"adapter logout", revocationpush.Notice{ID: "d2", Action: revocationpush.Logout, RealmID: "r", ClientID: "app", AdminURL: "https://app/admin", SessionIDs: []string{"s1", "s2"}}, "https://app/admin"},
		{"back-channel logout goes to the logout URL", revocationpush.Notice{ID: "d3", Action: revocationpush.BackchannelLogout, RealmID: "r", ClientID: "spa", AdminURL: "https://spa/admin", LogoutURL: "https://spa/bc"}, "https://spa/bc"},
		{"client without a target", revocationpush.Notice{ID: "d4", Action: revocationpush.PushNotBefore, RealmID: "r", ClientID: "cli"}, ""},
	}
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	p := New(log)
	if err := p.Configure(context.Background(), spi.Config{}); err != nil {
		t.Fatal(err)
	}
	notices := make([]revocationpush.Notice, len(tests))
	for i, tt := range tests {
		notices[i] = tt.notice
	}
	results, err := p.Push(context.Background(), notices)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(tests) {
		t.Fatalf("got %d results for %d notices", len(results), len(tests))
	}
	logged := buf.String()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := results[i]
			want := revocationpush.Result{NoticeID: tt.notice.ID, Target: tt.wantTarget, OK: false, Retry: false, Error: NotDelivered}
			if r != want {
				t.Errorf("result = %+v, want %+v", r, want)
			}
			if !strings.Contains(logged, "id="+tt.notice.ID) {
				t.Errorf("notice %s not logged; log:\n%s", tt.notice.ID, logged)
			}
		})
	}
	if n := strings.Count(logged, "[INFO]"); n != len(tests) {
		t.Errorf("%d info lines, want one per notice; log:\n%s", n, logged)
	}
	if strings.Contains(logged, "secret.jws.token") {
		t.Error("the signed token was written to the log")
	}
}

func TestDescribe(t *testing.T) {
	d := New(nil).Describe()
	if d.SPI != spi.RevocationPush || d.ID != ID || d.Help == "" || d.Version == "" {
		t.Errorf("Describe() = %+v", d)
	}
}
