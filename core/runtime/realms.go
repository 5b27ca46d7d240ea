package runtime

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/realm"
)

// loadRealms reads the realm files; start-dev without any serves the demo realm, whose
// client secret is generated here and shown once on out, never logged.
func loadRealms(log hclog.Logger, settings *conf.Settings, profile conf.Profile, out io.Writer) (*realm.Realms, error) {
	var realms []*realm.Realm
	switch {
	case len(settings.RealmFiles) > 0:
		var err error
		if realms, err = realm.LoadFiles(settings.RealmFiles...); err != nil {
			return nil, fmt.Errorf("realm-file: %w", err)
		}
	case profile == conf.ProfileDev:
		secret, err := newSecret()
		if err != nil {
			return nil, err
		}
		demo := realm.Demo(secret)
		realms = []*realm.Realm{demo}
		if out != nil {
			fmt.Fprintf(out, "start-dev: realm %q, client %q, client secret %s (shown once)\n",
				demo.Name, demo.Clients[0].ClientID, secret)
		}
	default:
		log.Warn("no realm-file given: sessiond serves no realm")
	}
	set, warnings, err := realm.NewRealms(realms...)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn("unsafe realm setting", "realm", w.Realm, "client", w.Client, "rule", w.Code, "detail", w.Message)
	}
	for _, r := range realms {
		log.Info("realm loaded", "realm", r.Name, "clients", len(r.Clients), "source", r.Source)
	}
	return set, nil
}

func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate the demo client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
