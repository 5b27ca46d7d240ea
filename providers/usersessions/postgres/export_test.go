package postgres

import "github.com/jmoiron/sqlx"

// Encode is encode, for the tests that compare a statement's notifications with a
// transaction's.
var Encode = encode

// Pool is the provider's connection pool, for the tests that act on its connections as an
// operator or a pooler would (DEALLOCATE ALL).
func Pool(p *Provider) *sqlx.DB { return p.db }
