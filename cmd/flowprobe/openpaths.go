package main

import (
	"context"
	"net"
	"net/http"
	"slices"
)

// openProbes lets liveness and readiness probes (exporter.OpenPaths) past
// the basic authentication of --web.config.file, so the shipped Kubernetes
// probes work on a protected instance; every other route stays protected.
//
// exporter-toolkit's web.Serve wraps srv.Handler in its authenticating
// handler just before it calls srv.Serve, and has no way to exempt a path.
// srv.Serve calls BaseContext once per listener, in the same goroutine and
// before the first Accept, so that is where the front handler goes: in
// front of whatever web.Serve installed. open is the unwrapped handler.
func openProbes(srv *http.Server, open http.Handler, paths []string) {
	srv.BaseContext = func(net.Listener) context.Context {
		if _, done := srv.Handler.(*probeFront); !done {
			srv.Handler = &probeFront{open: open, rest: srv.Handler, paths: paths}
		}
		return context.Background()
	}
}

// probeFront sends the probe paths to open and everything else to rest.
type probeFront struct {
	open, rest http.Handler
	paths      []string
}

func (f *probeFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if slices.Contains(f.paths, r.URL.Path) {
			f.open.ServeHTTP(w, r)
			return
		}
	}
	f.rest.ServeHTTP(w, r)
}
