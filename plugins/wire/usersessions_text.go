package wire

import (
	us "github.com/sessiond/sessiond/spi/usersessions"
)

// The client side of the text contract (usersessions.CheckText). gRPC refuses to marshal a
// string field that is not valid UTF-8, which would fail the whole call as an internal
// error; so what no provider may store is answered here as an in-process provider answers
// it, and never sent.

// sendable sends the items of a batch that can be stored and answers the others with their
// CheckText error, in the batch's order.
func sendable[T any](items []T, check func(T) error, send func([]T) ([]error, error)) ([]error, error) {
	errs := make([]error, len(items))
	ok := make([]T, 0, len(items))
	var at []int
	for i, it := range items {
		if errs[i] = check(it); errs[i] == nil {
			ok = append(ok, it)
			at = append(at, i)
		}
	}
	if len(ok) == len(items) {
		return send(items)
	}
	got, err := send(ok)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		if j < len(got) {
			errs[i] = got[j]
		}
	}
	return errs, nil
}

// storable returns the keys that can name something, and the index of each in keys.
func storable[K any](keys []K, ok func(K) bool) ([]K, []int) {
	out := make([]K, 0, len(keys))
	at := make([]int, 0, len(keys))
	for i, k := range keys {
		if ok(k) {
			out = append(out, k)
			at = append(at, i)
		}
	}
	return out, at
}

// checkSession and checkClient leave a nil item to the provider, which refuses it.
func checkSession(s *us.UserSession) error {
	if s == nil {
		return nil
	}
	return s.CheckText()
}

func checkClient(c *us.ClientSession) error {
	if c == nil {
		return nil
	}
	return c.CheckText()
}
