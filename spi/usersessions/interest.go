package usersessions

import (
	"context"
	"slices"
)

// Interest says which changes of a Watch its caller acts on. It is a hint that travels with
// the Watch's context: a provider whose feed crosses a process boundary (a plugin) leaves
// the other changes out instead of sending each one across only for the caller to drop it;
// any provider may ignore it, so a caller still filters what it gets. The Subscribed change
// is sent whatever the interest.
//
// It rides on the context rather than on a method of its own so that it passes through
// every wrapper that forwards Watch (group commit's front, the volatile store's merge of
// two feeds) unchanged.
type Interest struct {
	// Kinds are the kinds of change the caller acts on; none means every kind.
	Kinds []ChangeKind
	// IgnoreOrigin, when set, is a node id whose changes the caller does not act on (its
	// own writes, which it applied when the store acknowledged them).
	IgnoreOrigin string
}

type interestKey struct{}

// WithInterest returns ctx carrying in for a Watch called with it.
func WithInterest(ctx context.Context, in Interest) context.Context {
	return context.WithValue(ctx, interestKey{}, in)
}

// InterestOf is the interest ctx carries, the zero Interest (every change) when none.
func InterestOf(ctx context.Context) Interest {
	in, _ := ctx.Value(interestKey{}).(Interest)
	return in
}

// Wants reports whether a caller with this interest acts on c.
func (in Interest) Wants(c Change) bool {
	switch {
	case c.Kind == Subscribed:
		return true
	case in.IgnoreOrigin != "" && c.Origin == in.IgnoreOrigin:
		return false
	}
	return len(in.Kinds) == 0 || slices.Contains(in.Kinds, c.Kind)
}
