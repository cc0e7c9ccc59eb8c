package stream

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spikeline/spikeline/stream/schema"
)

// maxRecordRequest bounds the request quoted in a ControlRecord, in bytes.
const maxRecordRequest = 1024

// requestInfo is the part of nats-server's ClientInfo header we use.
type requestInfo struct {
	Account string `json:"acc"`
	User    string `json:"user"`
	Name    string `json:"name"`
	Host    string `json:"host"`
	ID      uint64 `json:"id"`
}

// RequestInfoHeader is the header nats-server stamps requests with when
// they cross accounts through a service import with share: true.
const RequestInfoHeader = "Nats-Request-Info"

// callerFrom reads the caller of a request from its headers.
func callerFrom(h map[string][]string, roles map[string]string) schema.Caller {
	v := h[RequestInfoHeader]
	if len(v) == 0 {
		return schema.Caller{}
	}
	var ri requestInfo
	if json.Unmarshal([]byte(v[0]), &ri) != nil || ri.Account == "" {
		return schema.Caller{}
	}
	return schema.Caller{Verified: true, Account: ri.Account, User: ri.User, Role: roles[ri.User], Name: ri.Name, Host: ri.Host, ID: ri.ID}
}

// RefusalEvery is the shortest interval between two records of alike
// server refusals: a client retrying in a loop makes one record per
// interval, with the count, not one per attempt.
const RefusalEvery = 10 * time.Second

// refusalLimiter folds alike refusals into one record per RefusalEvery.
type refusalLimiter struct {
	mu   sync.Mutex
	seen map[string]*refusalState
}

type refusalState struct {
	last   time.Time // when a record was last let through
	folded int       // refusals since, not yet reported
}

// admit returns whether a record of r should go out now and how many
// refusals it stands for.
func (l *refusalLimiter) admit(r Refusal, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]*refusalState{}
	}
	key := r.Kind + "\x00" + r.Subject + "\x00" + r.Client
	st := l.seen[key]
	if st == nil {
		if len(l.seen) > 4096 { // forget old clients rather than grow
			for k, v := range l.seen {
				if now.Sub(v.last) >= RefusalEvery {
					delete(l.seen, k)
				}
			}
		}
		l.seen[key] = &refusalState{last: now}
		return true, 1
	}
	st.folded++
	if now.Sub(st.last) < RefusalEvery {
		return false, 0
	}
	n := st.folded
	st.last, st.folded = now, 0
	return true, n
}

// quoteRequest returns data as it goes into a record: valid UTF-8, at
// most maxRecordRequest bytes.
func quoteRequest(data []byte) string {
	s := strings.ToValidUTF8(string(data), "\uFFFD")
	if len(s) > maxRecordRequest {
		cut := maxRecordRequest
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// callerFromClient reads the caller out of nats-server's description of
// a client in its log lines, `127.0.0.1:5555 - cid:9 - "v1.55.0:go:name" -
// "ACCOUNT/nkey:U…"` (the quoted parts once the client has sent CONNECT,
// either of them may be missing). The server vouches for it: it
// authenticated the connection.
func callerFromClient(client string, roles map[string]string) schema.Caller {
	var c schema.Caller
	parts := strings.Split(client, " - ")
	if len(parts) < 2 || !strings.HasPrefix(parts[1], "cid:") {
		return c
	}
	if host, _, err := net.SplitHostPort(parts[0]); err == nil {
		c.Host = host
	}
	c.ID, _ = strconv.ParseUint(strings.TrimPrefix(parts[1], "cid:"), 10, 64)
	for _, q := range parts[2:] {
		q, err := strconv.Unquote(q)
		if err != nil {
			continue
		}
		if acc, user, ok := strings.Cut(q, "/"); ok && !strings.Contains(acc, ":") {
			c.Account, c.User = acc, strings.TrimPrefix(user, "nkey:")
			c.Role, c.Verified = roles[c.User], true
		} else if f := strings.SplitN(q, ":", 3); len(f) == 3 {
			c.Name = f[2]
		} else {
			c.Name = q
		}
	}
	return c
}

// RefusalRecord is the record of a client the server refused; roles
// names the roles of known users.
func RefusalRecord(r Refusal, at time.Time, roles map[string]string) schema.ControlRecord {
	code := "permissions"
	reason := "the server refused a " + r.Kind + " on " + r.Subject + ": the client's role does not allow it"
	if r.Kind == RefusedAuthentication {
		code, reason = "authentication", "the server refused the client's credentials"
	}
	return schema.ControlRecord{V: schema.ControlRecordVersion, Time: at, Code: code, Reason: reason, Subject: r.Subject, Client: r.Client,
		Caller: callerFromClient(r.Client, roles)}
}
