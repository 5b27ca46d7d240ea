package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/ssf"
	"github.com/sessiond/sessiond/spi"
)

// SharedSignals is the SSF transmitter as the HTTP layer uses it; *ssf.Transmitter is one.
//
// The stream management endpoints are admin API routes and take the admin credential (the
// view-only one may read streams and their status). Why not a client's access token with a
// scope: a stream receives every session end of its realm, user and session ids of every
// client's users (default_subjects ALL), which is an operator's decision like registering a
// back-channel logout URL; sessiond grants scopes to clients without a per-client
// allow-list, so any confidential client could mint an ssf.manage token for itself.
type SharedSignals interface {
	Metadata(realm string) (ssf.Metadata, error)
	RealmOf(path string) string
	Create(ctx context.Context, realm string, u ssf.Update) (ssf.Config, error)
	Get(ctx context.Context, realm, id string) (ssf.Config, error)
	List(ctx context.Context, realm string) ([]ssf.Config, error)
	Update(ctx context.Context, realm string, u ssf.Update, replace bool) (ssf.Config, error)
	Delete(ctx context.Context, realm, id string) error
	Status(ctx context.Context, realm, id string) (ssf.Status, error)
	SetStatus(ctx context.Context, realm string, st ssf.Status) (ssf.Status, error)
	Verify(ctx context.Context, realm, id, state string) error
}

// errNoSSF answers the SSF routes when the transmitter does not run.
var errNoSSF = fmt.Errorf("%w: the Shared Signals transmitter runs with --spi-revocation-push-provider=%s", admin.ErrNotConfigured, ssf.ProviderID)

// ssfRoutes serves the transmitter metadata, without authentication as SSF 1.0 §7 has it:
// at the issuer's well-known path (the suffix between host and path) and, as OpenID
// discovery is served, under the issuer.
func (s *Server) ssfRoutes() {
	s.mux.HandleFunc("GET /.well-known/ssf-configuration/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		name := s.ssf.RealmOf(strings.TrimSuffix(r.URL.EscapedPath(), "/"))
		if name == "" {
			// Behind a proxy that strips a path prefix the issuer's path is not this one:
			// the realm's own part of it still names it.
			if rest, ok := strings.CutPrefix(r.PathValue("rest"), "realms/"); ok && !strings.Contains(rest, "/") {
				name = rest
			}
		}
		s.ssfMetadata(w, r, name)
	})
	s.mux.HandleFunc("GET /realms/{realm}/.well-known/ssf-configuration", func(w http.ResponseWriter, r *http.Request) {
		s.ssfMetadata(w, r, r.PathValue("realm"))
	})
}

func (s *Server) ssfMetadata(w http.ResponseWriter, r *http.Request, realmName string) {
	if realmName == "" {
		s.writeError(w, r, fmt.Errorf("no realm's issuer has the path %s: %w", r.URL.Path, spi.ErrNotFound))
		return
	}
	md, err := s.ssf.Metadata(realmName)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, md)
}

// ssfAdminRoutes are the stream management endpoints (SSF 1.0 §8.1), under the admin API.
func ssfAdminRoutes(realmWide func(*http.Request) string) []adminRoute {
	return []adminRoute{
		{"GET " + ssf.StreamsPath, "view-ssf-streams", false, realmWide, (*Server).ssfReadStreams},
		{"POST " + ssf.StreamsPath, "create-ssf-stream", true, realmWide, (*Server).ssfCreateStream},
		{"PUT " + ssf.StreamsPath, "replace-ssf-stream", true, realmWide, ssfUpdateStream(true)},
		{"PATCH " + ssf.StreamsPath, "update-ssf-stream", true, realmWide, ssfUpdateStream(false)},
		{"DELETE " + ssf.StreamsPath, "delete-ssf-stream", true, realmWide, (*Server).ssfDeleteStream},
		{"GET " + ssf.StatusPath, "view-ssf-stream-status", false, realmWide, (*Server).ssfStatus},
		{"POST " + ssf.StatusPath, "set-ssf-stream-status", true, realmWide, (*Server).ssfSetStatus},
		{"POST " + ssf.VerifyPath, "verify-ssf-stream", true, realmWide, (*Server).ssfVerify},
	}
}

// streamID is the stream_id query parameter: required, once.
func streamID(r *http.Request) (string, error) {
	v := r.URL.Query()["stream_id"]
	switch {
	case len(v) == 0 || v[0] == "":
		return "", fmt.Errorf("the stream_id query parameter is required: %w", spi.ErrInvalid)
	case len(v) > 1:
		return "", fmt.Errorf("stream_id is given %d times: %w", len(v), spi.ErrInvalid)
	}
	return v[0], nil
}

func (s *Server) ssfReadStreams(w http.ResponseWriter, r *http.Request) error {
	if s.ssf == nil {
		return errNoSSF
	}
	realmName := r.PathValue("realm")
	if r.URL.Query().Has("stream_id") {
		id, err := streamID(r)
		if err != nil {
			return err
		}
		c, err := s.ssf.Get(r.Context(), realmName, id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, c)
		return nil
	}
	all, err := s.ssf.List(r.Context(), realmName)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, all)
	return nil
}

func (s *Server) ssfCreateStream(w http.ResponseWriter, r *http.Request) error {
	if s.ssf == nil {
		return errNoSSF
	}
	var u ssf.Update
	if err := decodeJSON(w, r, &u); err != nil {
		return err
	}
	c, err := s.ssf.Create(r.Context(), r.PathValue("realm"), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func ssfUpdateStream(replace bool) func(*Server, http.ResponseWriter, *http.Request) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request) error {
		if s.ssf == nil {
			return errNoSSF
		}
		var u ssf.Update
		if err := decodeJSON(w, r, &u); err != nil {
			return err
		}
		c, err := s.ssf.Update(r.Context(), r.PathValue("realm"), u, replace)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, c)
		return nil
	}
}

func (s *Server) ssfDeleteStream(w http.ResponseWriter, r *http.Request) error {
	if s.ssf == nil {
		return errNoSSF
	}
	id, err := streamID(r)
	if err != nil {
		return err
	}
	if err := s.ssf.Delete(r.Context(), r.PathValue("realm"), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) ssfStatus(w http.ResponseWriter, r *http.Request) error {
	if s.ssf == nil {
		return errNoSSF
	}
	id, err := streamID(r)
	if err != nil {
		return err
	}
	st, err := s.ssf.Status(r.Context(), r.PathValue("realm"), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) ssfSetStatus(w http.ResponseWriter, r *http.Request) error {
	if s.ssf == nil {
		return errNoSSF
	}
	var st ssf.Status
	if err := decodeJSON(w, r, &st); err != nil {
		return err
	}
	got, err := s.ssf.SetStatus(r.Context(), r.PathValue("realm"), st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, got)
	return nil
}

// verifyRequest is the body of a verification request (SSF 1.0 §8.1.4.2).
type verifyRequest struct {
	StreamID string `json:"stream_id"`
	State    string `json:"state"`
}

func (s *Server) ssfVerify(w http.ResponseWriter, r *http.Request) error {
	if s.ssf == nil {
		return errNoSSF
	}
	var v verifyRequest
	if err := decodeJSON(w, r, &v); err != nil {
		return err
	}
	if err := s.ssf.Verify(r.Context(), r.PathValue("realm"), v.StreamID, v.State); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
