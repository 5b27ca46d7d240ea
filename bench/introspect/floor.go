package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/sessiond/sessiond/core/httpapi"
)

// floorBody is an introspection answer of the size sessiond's is.
const floorBody = `{"active":true,"client_id":"shop","username":"bench","token_type":"Bearer","exp":1796632149,"iat":1796631849,"sub":"bench-user","jti":"2TJJZAEQTH23R6UAOGZGBDKHC6","iss":"http://127.0.0.1:18480/realms/quickstart","aud":["shop"],"typ":"Bearer","azp":"shop","sid":"2e54o4qrtlyyxsfdfahf5uxnnl"}` + "\n"

// startFloor serves, in this process, the least a Go net/http server does for the same
// request: parse the form and the Basic credentials, answer a fixed JSON body, with
// sessiond's server timeouts. No token or session is looked at: it is the ceiling any
// handler on net/http can reach on this machine, not a competitor.
func startFloor(dir string, port int) (*target, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/token/introspect", func(w http.ResponseWriter, r *http.Request) {
		_, _, basic := r.BasicAuth()
		if err := r.ParseForm(); err != nil || !basic || r.PostForm.Get("token") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(floorBody))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: httpapi.ReadHeaderTimeout, ReadTimeout: httpapi.ReadTimeout,
		WriteTimeout: httpapi.WriteTimeout, IdleTimeout: httpapi.IdleTimeout, MaxHeaderBytes: httpapi.MaxHeaderBytes}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t := &target{name: "net/http floor", url: fmt.Sprintf("http://127.0.0.1:%d/realms/%s/protocol/openid-connect/token/introspect", port, benchRealm),
		script: filepath.Join(dir, "floor.lua")}
	t.stop = func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("net/http floor:", err)
		}
	}
	t.prime = func(context.Context) error {
		// A body as long as sessiond's request with its access token.
		return writeScript(t.script, "POST", "token="+strings.Repeat("x", 580), "Authorization", basicShop, "Content-Type", "application/x-www-form-urlencoded")
	}
	return t, nil
}
