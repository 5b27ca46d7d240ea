package usersessions

import "context"

// PageLender is what a Provider may implement beside Stream for callers that keep
// nothing of a page. StreamLent is Stream, except that each page, the sessions in it,
// their notes and their client sessions are fn's only until fn returns: the provider
// may reuse them for the next page. A preload that copies each session into its cache
// then spares the provider building a million sessions, and the garbage collector
// collecting them (through a plugin they were a third of the host's CPU).
//
// A caller holding a Provider that may not be a PageLender uses Stream; nothing but the
// lifetime of what fn is given differs.
type PageLender interface {
	StreamLent(ctx context.Context, req StreamRequest, fn func(page []*UserSession) error) error
}
