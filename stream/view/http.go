package view

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed page/index.html
var indexHTML []byte

// writeTimeout is how long one write to a browser may take before the
// browser is given up (a stuck tab must not hold its handler forever).
const writeTimeout = 10 * time.Second

// pingEvery is the interval of SSE comment lines that keep idle proxies
// from closing the stream.
const pingEvery = 15 * time.Second

// ServeHTTP serves the page on /, the event stream on /events and a
// health check on /healthz.
func (v *View) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/", "/index.html":
		v.servePage(w, r)
	case "/events":
		v.serveEvents(w, r)
	case "/select":
		v.serveSelect(w, r)
	case "/favicon.ico":
		w.WriteHeader(http.StatusNoContent)
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "ok %d browsers\n", v.hub.count())
	default:
		http.NotFound(w, r)
	}
}

func (v *View) servePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(indexHTML)))
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
	if r.Method == http.MethodHead {
		return
	}
	w.Write(indexHTML)
}

// serveSelect takes a browser's channel selection: POST /select with the
// form values client (Hello.Client) and ch (comma-separated channels;
// empty: back to the default channel). It answers the watched channels
// as JSON.
func (v *View) serveSelect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := sameOrigin(r); err != nil {
		http.Error(w, "select: "+err.Error(), http.StatusForbidden)
		return
	}
	if v.live == nil {
		http.Error(w, "this view has no live detail: traces and waveforms come with the view of 'spikeline run'", http.StatusNotFound)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "select: "+err.Error(), http.StatusBadRequest)
		return
	}
	id, err := strconv.ParseUint(r.FormValue("client"), 10, 64)
	if err != nil {
		http.Error(w, fmt.Sprintf("select: client %q: want the id from the hello event", r.FormValue("client")), http.StatusBadRequest)
		return
	}
	if !v.hub.connected(id) {
		http.Error(w, fmt.Sprintf("select: client %d is not connected to /events", id), http.StatusConflict)
		return
	}
	var chans []int
	if s := strings.TrimSpace(r.FormValue("ch")); s != "" {
		for _, f := range strings.Split(s, ",") {
			c, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				http.Error(w, fmt.Sprintf("select: ch %q: %q is not a channel number", s, f), http.StatusBadRequest)
				return
			}
			chans = append(chans, c)
		}
	}
	if err := v.live.Select(id, chans); err != nil {
		http.Error(w, "select: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(mustJSON(map[string]any{"client": id, "selected": chans}))
}

func (v *View) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rc := http.NewResponseController(w)
	c, first, err := v.hub.join()
	switch {
	case errors.Is(err, errFull):
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("spikeline view: %d browsers are already connected, the most this view serves (MaxBrowsers, --view-max-browsers); close one and reload", v.cfg.MaxBrowsers), http.StatusServiceUnavailable)
		v.cfg.Logger.Warn("live page: event stream refused, too many browsers", "max", v.cfg.MaxBrowsers, "remote", r.RemoteAddr)
		return
	case err != nil:
		http.Error(w, "view is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer v.hub.leave(c)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	write := func(msgs ...[]byte) error {
		// Not every ResponseWriter supports deadlines (httptest's
		// recorder does not); the stream still works without.
		if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		for _, m := range msgs {
			if _, err := w.Write(m); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	if err := write(append([][]byte{[]byte("retry: 2000\n\n")}, first...)...); err != nil {
		return
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-c.ch:
			if !ok {
				return
			}
			out := [][]byte{msg}
			if d := c.dropped.Load(); d != reported {
				reported = d
				out = append(out, sse("lag", mustJSON(Lag{Dropped: d})))
			}
			if write(out...) != nil {
				return
			}
		case <-ping.C:
			if write([]byte(": ping\n\n")) != nil {
				return
			}
		}
	}
}

// sameOrigin refuses a request a browser sent from another site: its
// Origin header, when there is one, must name this server (the request's
// Host, or the X-Forwarded-Host a reverse proxy set: a page elsewhere
// cannot add that header to a cross-site request without a CORS
// preflight, which this server does not answer), and Sec-Fetch-Site, when
// there is one, must not say cross-site. Clients other than browsers
// (curl) send neither and pass.
func sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return fmt.Errorf("refused a request from another site (Sec-Fetch-Site: %s)", site)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err == nil && u.Host != "" && (u.Host == r.Host || u.Host == r.Header.Get("X-Forwarded-Host")) {
		return nil
	}
	return fmt.Errorf("refused a request from origin %q: this page is served as %s", origin, r.Host)
}

// LoopbackHosts wraps h to refuse requests whose Host header is not an IP
// address or "localhost". Serve a view bound to loopback through it: a
// web page elsewhere could otherwise point a name it controls at
// 127.0.0.1 (DNS rebinding) and read the rig's data from the browser.
func LoopbackHosts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.Trim(host, "[]")
		if host != "localhost" && net.ParseIP(host) == nil {
			http.Error(w, fmt.Sprintf("spikeline view: host %q refused: the view is bound to loopback, use 127.0.0.1 or localhost", r.Host), http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}
