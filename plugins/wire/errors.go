package wire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/spipb"
)

// This file is the only place that maps errors between Go and gRPC, in both directions.

// sentinelCodes pairs each error callers branch on with the gRPC code that carries it.
func sentinelCodes() []struct {
	err  error
	code codes.Code
} {
	return []struct {
		err  error
		code codes.Code
	}{
		{spi.ErrNotFound, codes.NotFound},
		{spi.ErrExists, codes.AlreadyExists},
		{spi.ErrConflict, codes.Aborted},
		{spi.ErrUnavailable, codes.Unavailable},
		{spi.ErrInvalid, codes.InvalidArgument},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
	}
}

// codeOf is the gRPC code that carries err's sentinel; codes.Unknown when it has none.
func codeOf(err error) codes.Code {
	for _, s := range sentinelCodes() {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return codes.Unknown
}

// sentinelOf is the inverse of codeOf; nil for codes that carry no sentinel.
func sentinelOf(c codes.Code) error {
	for _, s := range sentinelCodes() {
		if s.code == c {
			return s.err
		}
	}
	return nil
}

// remoteError is an error a provider returned, rebuilt on the host: the provider's text,
// and the sentinel it wrapped.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func remote(c codes.Code, msg string) error {
	if s := sentinelOf(c); s != nil {
		return &remoteError{msg: msg, sentinel: s}
	}
	return errors.New(msg)
}

// toStatus turns a provider's error into the status a server adapter returns. The
// ProviderError detail tells the client it came from the provider, not from the transport.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	st := status.New(codeOf(err), err.Error())
	if withDetail, derr := st.WithDetails(&spipb.ProviderError{}); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// fromStatus turns the error of an RPC back into what the provider returned, or explains
// why the call did not reach it. op names the call for the error text.
func fromStatus(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := callerDone(ctx); ctxErr != nil {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: provider unreachable: %v: %w", op, err, spi.ErrUnavailable)
	}
	for _, d := range st.Details() {
		if _, ok := d.(*spipb.ProviderError); ok {
			return remote(st.Code(), st.Message())
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.Canceled:
		// Canceled without our ctx being done: the connection is closing under us.
		return fmt.Errorf("%s: provider unreachable: %s: %w", op, st.Message(), spi.ErrUnavailable)
	case codes.Unimplemented:
		return fmt.Errorf("%s: the plugin does not implement this call (built against another protocol?): %s", op, st.Message())
	}
	return fmt.Errorf("%s: %s: %s", op, st.Code(), st.Message())
}

// callerDone is ctx.Err(), or DeadlineExceeded as soon as ctx's deadline has passed: the
// server enforces the same deadline and its answer can arrive before ctx's own timer fires.
func callerDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// itemErrors is the wire form of a batch's per-item errors.
func itemErrors(errs []error) *spipb.ItemErrors {
	out := &spipb.ItemErrors{Errors: make([]*spipb.ItemError, len(errs))}
	for i, err := range errs {
		if err == nil {
			out.Errors[i] = &spipb.ItemError{}
			continue
		}
		out.Errors[i] = &spipb.ItemError{Code: uint32(codeOf(err)), Message: err.Error()}
	}
	return out
}

func fromItemErrors(pb *spipb.ItemErrors) []error {
	out := make([]error, len(pb.GetErrors()))
	for i, e := range pb.GetErrors() {
		if codes.Code(e.GetCode()) != codes.OK {
			out[i] = remote(codes.Code(e.GetCode()), e.GetMessage())
		}
	}
	return out
}
