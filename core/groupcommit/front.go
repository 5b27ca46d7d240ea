package groupcommit

import (
	"context"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// Fronted is a user-sessions provider whose session writes (Create, Touch,
// PutClientSessions, Rotate) go through a Writer; every other call goes to the provider.
// It is a usersessions.Rotator whatever the provider: the Writer falls back to the two
// calls for a provider that is not.
type Fronted struct {
	usersessions.Provider
	w *Writer
}

// Front returns p with its session writes going through w, which must write to p.
func Front(p usersessions.Provider, w *Writer) Fronted { return Fronted{Provider: p, w: w} }

func (f Fronted) Create(ctx context.Context, s []*usersessions.UserSession) ([]error, error) {
	return f.w.Create(ctx, s)
}

func (f Fronted) Touch(ctx context.Context, t []usersessions.Touch) ([]error, error) {
	return f.w.Touch(ctx, t)
}

func (f Fronted) PutClientSessions(ctx context.Context, c []*usersessions.ClientSession) ([]error, error) {
	return f.w.PutClientSessions(ctx, c)
}

func (f Fronted) Rotate(ctx context.Context, r []usersessions.Rotation) ([]error, error) {
	return f.w.Rotate(ctx, r)
}
