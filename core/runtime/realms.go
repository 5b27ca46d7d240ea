package runtime

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/core/realm"
)

// loadRealms reads the realm files; start-dev without any serves the demo realm, whose
// client secret is generated here and returned as notice, for Start to show once on the
// operator's terminal when it serves (never logged, and never shown by a start that then
// fails).
func loadRealms(log hclog.Logger, settings *conf.Settings, profile conf.Profile) (set *realm.Realms, notice string, err error) {
	var realms []*realm.Realm
	switch {
	case len(settings.RealmFiles) > 0:
		if realms, err = realm.LoadFiles(settings.RealmFiles...); err != nil {
			return nil, "", fmt.Errorf("realm-file: %w", err)
		}
	case profile == conf.ProfileDev:
		secret, err := newSecret()
		if err != nil {
			return nil, "", err
		}
		demo := realm.Demo(secret)
		realms = []*realm.Realm{demo}
		notice = fmt.Sprintf("start-dev: realm %q, client %q, client secret %s (shown once)", demo.Name, demo.Clients[0].ClientID, secret)
	default:
		log.Warn("no realm-file given: sessiond serves no realm")
	}
	set, warnings, err := realm.NewRealms(realms...)
	if err != nil {
		return nil, "", err
	}
	for _, w := range warnings {
		msg := "unsafe realm setting"
		if w.Code == realm.CodeTimeoutDefault {
			msg = "realm timeout not set: the default applies"
		}
		log.Warn(msg, "realm", w.Realm, "client", w.Client, "rule", w.Code, "detail", w.Message)
	}
	for _, r := range realms {
		log.Info("realm loaded", "realm", r.Name, "clients", len(r.Clients), "source", r.Source)
	}
	return set, notice, nil
}

func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate the demo client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
