package view

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spikeline/spikeline/stream"
)

// client is one connected browser.
type client struct {
	id      uint64      // Hello.Client: names the browser in /select
	ch      chan []byte // complete SSE messages, shared and immutable
	dropped atomic.Uint64
}

type replayFrame struct {
	at     time.Time
	sample uint64 // newest sample when the frame was built
	msg    []byte
}

// hub fans frames out to the browsers and keeps what a newly connected
// browser needs: the latest status, the events log, the templates and
// the frames of the last Window.
type hub struct {
	cfg   Config
	drops *atomic.Uint64

	mu          sync.Mutex
	clients     map[*client]struct{}
	closed      bool
	rate        float64
	sample      uint64
	status      *StatusJSON
	events      []EventJSON // ring of the last MaxEvents, in order
	templates   *TemplatesJSON
	info        *stream.Info
	replay      []replayFrame
	replayBytes int
	probe       *ProbeJSON
	live        *Live
	nextID      uint64
}

func (h *hub) init(cfg Config, drops *atomic.Uint64) {
	h.cfg = cfg
	h.drops = drops
	h.clients = map[*client]struct{}{}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// sse formats one Server-Sent Event. data must not contain newlines
// (encoding/json output does not).
func sse(event string, data []byte) []byte {
	b := make([]byte, 0, len(event)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	return b
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every type sent is made of strings, integers and Num, which
		// always encode.
		panic("view: " + err.Error())
	}
	return b
}

// send queues msg for every browser, dropping it (and counting) for those
// whose queue is full. Called with h.mu held.
func (h *hub) sendLocked(msg []byte) {
	for c := range h.clients {
		select {
		case c.ch <- msg:
		default:
			c.dropped.Add(1)
			h.drops.Add(1)
		}
	}
}

// publish encodes f and sends it to every browser.
func (h *hub) publish(f *Frame, now time.Time) {
	msg := frameEvent(f)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if f.Rate > 0 {
		h.rate = f.Rate
	}
	if f.Sample < h.sample {
		// The device was reset: what is kept is on another clock.
		h.replay, h.replayBytes = nil, 0
	}
	h.sample = f.Sample
	if f.Status != nil {
		h.status = f.Status
	}
	if f.Probe != nil {
		h.probe = f.Probe
	}
	if len(f.Events) > 0 {
		h.events = append(h.events, f.Events...)
		if over := len(h.events) - h.cfg.MaxEvents; over > 0 {
			h.events = append(h.events[:0], h.events[over:]...)
		}
	}
	// Frames with data are kept while they are within Window of the
	// newest sample (of the wall clock while the rate is unknown), so a
	// browser that connects after the rig went silent still sees its
	// last moments. Heartbeats carry no data and are not kept.
	if f.Spikes != nil || len(f.Estimates) > 0 || f.Status != nil || len(f.Events) > 0 {
		h.replay = append(h.replay, replayFrame{at: now, sample: f.Sample, msg: msg})
		h.replayBytes += len(msg)
	}
	old := func(r replayFrame) bool {
		if h.rate > 0 {
			return float64(h.sample-r.sample) > h.cfg.Window.Seconds()*h.rate
		}
		return now.Sub(r.at) > h.cfg.Window
	}
	cut := 0
	for cut < len(h.replay) && (old(h.replay[cut]) || h.replayBytes > maxReplayBytes) {
		h.replayBytes -= len(h.replay[cut].msg)
		h.replay[cut] = replayFrame{}
		cut++
	}
	if cut > 0 {
		h.replay = append(h.replay[:0], h.replay[cut:]...)
	}
	h.sendLocked(msg)
}

// setTemplates records the current templates and sends them.
func (h *hub) setTemplates(t *TemplatesJSON) {
	msg := sse("templates", mustJSON(t))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.templates = t
	h.sendLocked(msg)
}

// setInfo records the pipeline description and sends it.
func (h *hub) setInfo(info *stream.Info) {
	msg := sse("info", mustJSON(info))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.info = info
	h.sendLocked(msg)
}

// setLive records the in-process detail source.
func (h *hub) setLive(l *Live) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live = l
}

// publishDetail sends a "detail" event to every browser. Details are not
// kept for replay: a browser that connects gets a snapshot instead.
func (h *hub) publishDetail(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.sendLocked(msg)
	}
}

// connected reports whether the browser id is connected now.
func (h *hub) connected(id uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if c.id == id {
			return true
		}
	}
	return false
}

// join registers a browser and returns what it must be sent first: the
// hello event and the recent frames. ok is false after close.
// join's refusals.
var (
	errFull   = errors.New("view: too many browsers")
	errClosed = errors.New("view: shutting down")
)

func (h *hub) join() (c *client, first [][]byte, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, errClosed
	}
	if len(h.clients) >= h.cfg.MaxBrowsers {
		return nil, nil, errFull
	}
	h.nextID++
	hello := Hello{
		Client: h.nextID, Probe: h.probe,
		Rig: h.cfg.Rig, Rate: h.rate, Sample: h.sample, FrameRate: h.cfg.FrameRate,
		WindowS: h.cfg.Window.Seconds(), MaxSpikes: h.cfg.MaxSpikesPerFrame, Truth: h.cfg.Truth,
		Templates: h.templates, Info: h.info, Status: h.status, Events: append([]EventJSON{}, h.events...),
	}
	if h.live != nil {
		hello.Live = h.live.info()
	}
	first = make([][]byte, 0, 2+len(h.replay))
	first = append(first, sse("hello", mustJSON(hello)))
	for _, r := range h.replay {
		first = append(first, r.msg)
	}
	if h.live != nil {
		// Detail events sent between this snapshot and the browser's
		// first read carry columns and waveforms it may already have;
		// they are keyed by column index and waveform id, so the page
		// takes them once.
		first = append(first, h.live.snapshot())
	}
	c = &client{id: h.nextID, ch: make(chan []byte, h.cfg.ClientQueue)}
	h.clients[c] = struct{}{}
	return c, first, nil
}

// leave unregisters a browser and forgets its selection.
func (h *hub) leave(c *client) {
	h.mu.Lock()
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		close(c.ch)
	}
	l := h.live
	h.mu.Unlock()
	if l != nil {
		l.forget(c.id)
	}
}

// close disconnects every browser and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		delete(h.clients, c)
		close(c.ch)
	}
	h.replay = nil
}
