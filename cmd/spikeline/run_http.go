package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startHTTP serves the live page ("/") and the Prometheus metrics
// ("/metrics") on --http, and prints the URL. A taken port falls back to a
// free one rather than failing a recording session.
func (p *pipeline) startHTTP(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", p.opts.http)
	if errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(p.opts.http)
		p.log.Warn("--http port taken; using a free one", "http", p.opts.http)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	page, stopView, err := p.startView(ctx)
	if err != nil {
		ln.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &runCollector{p: p})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)}))
	// The Go profiler, for "where does the time go" on a live rig:
	// go tool pprof http://ADDR/debug/pprof/profile?seconds=30
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", page)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	if host, _, _ := net.SplitHostPort(p.opts.http); !isLoopbackHost(host) {
		p.log.Warn("the live page is served beyond this machine: anyone who can reach it sees the rig's data", "http", ln.Addr().String())
	}
	p.httpAddr = ln.Addr().String()
	fmt.Fprintf(p.stdout, "spikeline: live view http://%s/ — metrics http://%s/metrics\n", p.httpAddr, p.httpAddr)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("http server", "err", err)
		}
	}()
	return func() {
		stopView() // ends the browsers' event streams, so Shutdown need not wait for them
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}, nil
}

// isLoopbackHost reports whether host (from HOST:PORT) only listens on
// this machine.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
