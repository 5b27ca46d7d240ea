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

// ParallelLender is what a Provider may implement for callers that read a whole selection
// with several workers. StreamLentParallel is StreamLent of the whole selection
// (req.Partition is zero), except that fn is called by up to workers goroutines at once,
// each page lent until its own call returns. Such a caller asks it before it reads one
// Partition per worker, as one pass over the store may cost far less than one per part:
// the plugin client implements it, since a plugin's pages come over one connection
// whatever the parts, and its workers share the decoding and what fn does. It returns
// an error wrapping errors.ErrUnsupported, before it calls fn, when it cannot serve the
// request so; the caller then reads partitions.
type ParallelLender interface {
	StreamLentParallel(ctx context.Context, req StreamRequest, workers int, fn func(page []*UserSession) error) error
}

// Lender hands out the sessions, client sessions and maps of a PageLender's pages,
// reusing those of the page before. Not safe for concurrent use: one per stream.
type Lender struct {
	page              []*UserSession
	sessions          []*lentSession
	clients           []*lentClient
	used, usedClients int
}

// lentSession is a session a Lender reuses, with the maps it last had.
type lentSession struct {
	s       UserSession
	notes   map[string]string
	clients map[string]*ClientSession
}

// lentClient is a client session a Lender reuses, with the map it last had.
type lentClient struct {
	c     ClientSession
	notes map[string]string
}

// Page starts a page: everything handed out before may be reused from here. It returns an
// empty page to append the page's sessions to.
func (l *Lender) Page() []*UserSession {
	l.used, l.usedClients = 0, 0
	return l.page[:0]
}

// Keep remembers the page's slice, to reuse it for the next page.
func (l *Lender) Keep(page []*UserSession) {
	if cap(page) > cap(l.page) {
		l.page = page[:0]
	}
}

// Session returns an empty session.
func (l *Lender) Session() *UserSession {
	if l.used == len(l.sessions) {
		l.sessions = append(l.sessions, &lentSession{})
	}
	ls := l.sessions[l.used]
	l.used++
	ls.s = UserSession{}
	return &ls.s
}

// Client returns an empty client session.
func (l *Lender) Client() *ClientSession {
	if l.usedClients == len(l.clients) {
		l.clients = append(l.clients, &lentClient{})
	}
	lc := l.clients[l.usedClients]
	l.usedClients++
	lc.c = ClientSession{}
	return &lc.c
}

// SessionNotes returns an empty map for the notes of the session Session handed out last.
func (l *Lender) SessionNotes() map[string]string { return emptied(&l.sessions[l.used-1].notes) }

// SessionClients returns an empty map for the client sessions of the session Session
// handed out last.
func (l *Lender) SessionClients() map[string]*ClientSession {
	return emptied(&l.sessions[l.used-1].clients)
}

// ClientNotes returns an empty map for the notes of the client session Client handed out
// last.
func (l *Lender) ClientNotes() map[string]string { return emptied(&l.clients[l.usedClients-1].notes) }

func emptied[V any](m *map[string]V) map[string]V {
	if *m == nil {
		*m = make(map[string]V, 1)
	}
	clear(*m)
	return *m
}
