package rig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spikeline/spikeline/stream"
	"github.com/spikeline/spikeline/stream/view"
)

// startHTTP serves the live page ("/") and the Prometheus metrics
// ("/metrics") on --http, and prints the URL. A taken port falls back to a
// free one rather than failing a recording session.
func (p *Rig) startHTTP(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", p.cfg.HTTP)
	if errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(p.cfg.HTTP)
		p.log.Warn("--http port taken; using a free one", "http", p.cfg.HTTP)
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
	if p.cfg.Pprof {
		// The Go profiler, for "where does the time go" on a live rig:
		// go tool pprof http://ADDR/debug/pprof/profile?seconds=30
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", redactedCmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", page)
	// Bound to loopback, every path answers only requests addressed to an
	// IP address or localhost (DNS rebinding); bound beyond, any name.
	var h http.Handler = mux
	host, _, _ := net.SplitHostPort(p.cfg.HTTP)
	if isLoopbackHost(host) {
		h = view.LoopbackHosts(mux)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	if !isLoopbackHost(host) {
		exposed := "the live page (spike raster, rates, noise, decoder output, templates, events, and the traces and waveforms of any channel), /metrics"
		if p.cfg.Pprof {
			exposed += ", and the Go profiler /debug/pprof (heap contents, and CPU profiles that slow the pipeline while they run)"
		}
		p.log.Warn("--http is reachable beyond this machine, without authentication: anyone who can reach "+ln.Addr().String()+" gets "+exposed+
			"; NATS and the control service stay as they are", "http", ln.Addr().String())
	}
	p.httpAddr = ln.Addr().String()
	fmt.Fprintf(p.stdout, "spikeline: live view http://%s/ — metrics http://%s/metrics\n", p.httpAddr, p.httpAddr)
	if p.cfg.Pprof {
		fmt.Fprintf(p.stdout, "spikeline: profiler http://%s/debug/pprof/\n", p.httpAddr)
	}
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

// secretFlags are the flags whose values must not leave the process.
var secretFlags = map[string]bool{"nats-password": true, "nats-token": true}

// redactedCmdline is pprof's /debug/pprof/cmdline without secrets: the
// values of secret flags and any user information in URLs are replaced.
func redactedCmdline(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, strings.Join(redactArgs(os.Args), "\x00"))
}

// redactArgs returns args with secret flag values and URL user
// information redacted.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	hide := false
	for i, a := range args {
		switch {
		case hide:
			out[i], hide = "REDACTED", false
			continue
		case strings.HasPrefix(a, "-"):
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if secretFlags[name] {
				if hasValue {
					out[i] = a[:strings.Index(a, "=")+1] + "REDACTED"
				} else {
					out[i], hide = a, true
				}
				continue
			}
		}
		out[i] = a
		if strings.Contains(a, "@") {
			parts := strings.Split(a, ",")
			for j, p := range parts {
				parts[j] = stream.RedactURL(p)
			}
			out[i] = strings.Join(parts, ",")
		}
	}
	return out
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
