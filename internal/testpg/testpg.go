// Package testpg tells tests where their PostgreSQL is: the database .ci/services creates,
// or the one SESSIOND_TEST_POSTGRES_URL names.
package testpg

import "os"

// DefaultURL is the database .ci/services creates and `make test` uses.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/sessiond_test?sslmode=disable"

// URL is SESSIOND_TEST_POSTGRES_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("SESSIOND_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}
