package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spikeline/spikeline/stream/schema"

	"github.com/nats-io/nkeys"
)

// Roles of a rig on NATS (docs/run.md, "Security").
const (
	// RolePipeline publishes the rig's subjects and answers its control
	// service: spikeline run itself.
	RolePipeline = "pipeline"
	// RoleOperator may call the control service: threshold, refit, device
	// commands, stimulation.
	RoleOperator = "operator"
	// RoleReader subscribes to the rig's data and publishes nothing but
	// info and stats requests (and, with JetStream, reads of the capture).
	RoleReader = "reader"
	// RoleBehaviour publishes the behaviour subject the pipeline
	// calibrates its decoder from (a motion tracker), and nothing else.
	RoleBehaviour = "behaviour"
	// RoleShard sorts channel groups for the rig (spikeline shard, remote
	// sorting): it reads the rig's raw blocks and the shard control
	// subjects and publishes only its output, heartbeats and requests
	// under spikeline.<rig>.shard (docs/scale-out.md).
	RoleShard = "shard"
)

// Accounts of the layout: the pipeline and the readers share the data
// account; operators live in the control account, which imports the
// control service, so that the NATS server itself stamps every control
// request with the caller's identity (the Nats-Request-Info header).
const (
	AccountData    = "SPIKELINE"
	AccountControl = "SPIKELINE_CONTROL"
)

// Layout is the authorization of one rig on a NATS server: which users
// (NKey public keys) have which role. ServerConfig renders it as a
// nats-server configuration, which the embedded server runs and which an
// external server or cluster can include.
type Layout struct {
	Rig       string
	Pipeline  []string // NKey public keys (U…) of each role
	Operators []string
	Readers   []string
	Behaviour []string
	Shards    []string
	// BehaviourSubject is the subject the pipeline reads behaviour from
	// (--behaviour-subject): published by Behaviour users and operators.
	BehaviourSubject string
	// AnonymousReaders makes clients that give no credentials the first
	// reader (nats-server's no_auth_user).
	AnonymousReaders bool
	// JetStream enables JetStream for the data account and lets readers
	// consume (never alter) the rig's capture stream.
	JetStream bool
}

// quoteAll renders subjects as a configuration list.
func quoteAll(subjects ...string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// ServerConfig returns the nats-server configuration (accounts, users,
// permissions, exports and imports) of l.
func (l Layout) ServerConfig() (string, error) {
	if err := schema.ValidToken(l.Rig); err != nil {
		return "", fmt.Errorf("stream: authorization: rig: %w", err)
	}
	if len(l.Pipeline) == 0 {
		return "", errors.New("stream: authorization: no pipeline user")
	}
	if l.AnonymousReaders && len(l.Readers) == 0 {
		return "", errors.New("stream: authorization: anonymous readers need a reader user")
	}
	for _, k := range [][]string{l.Pipeline, l.Operators, l.Readers, l.Behaviour, l.Shards} {
		for _, pub := range k {
			if !nkeys.IsValidPublicUserKey(pub) {
				return "", fmt.Errorf("stream: authorization: %q is not an NKey user public key", pub)
			}
		}
	}
	beh := strings.TrimSpace(l.BehaviourSubject)
	if strings.ContainsAny(beh, " \t\r\n\"") {
		return "", fmt.Errorf("stream: authorization: behaviour subject %q", beh)
	}
	if beh == "" && len(l.Behaviour) > 0 {
		return "", errors.New("stream: authorization: behaviour users without a behaviour subject")
	}
	p := schema.Prefix + "." + l.Rig
	ctl := p + ".ctl"
	stream := StreamName(l.Rig)

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	user := func(indent, pub, role string, perms ...string) {
		w("%s# %s", indent, role)
		w("%s{nkey: %s, permissions: {", indent, pub)
		for _, p := range perms {
			w("%s  %s", indent, p)
		}
		w("%s}}", indent)
	}
	w("# spikeline authorization of rig %s: roles pipeline, reader, operator, shard (docs/run.md, Security).", l.Rig)
	w("accounts: {")
	w("  %s: {", AccountData)
	if l.JetStream {
		w("    jetstream: enabled")
	}
	w("    users: [")
	pipeSub := []string{p + ".>", "$SRV.>", "_INBOX.>"}
	if beh != "" {
		pipeSub = append(pipeSub, beh)
	}
	pipePub := []string{p + ".>"}
	if l.JetStream {
		pipePub = append(pipePub, "$JS.API.>")
	}
	for _, k := range l.Pipeline {
		user("      ", k, "pipeline: publishes the rig's subjects, answers the control service",
			"publish: {allow: "+quoteAll(pipePub...)+", deny: "+quoteAll(ctl+".>")+"}",
			"subscribe: {allow: "+quoteAll(pipeSub...)+"}",
			"allow_responses: true")
	}
	readPub := []string{ctl + ".info", ctl + ".stats"}
	if l.JetStream {
		readPub = append(readPub, "$JS.API.INFO", "$JS.API.STREAM.INFO."+stream,
			"$JS.API.CONSUMER.INFO."+stream+".*", "$JS.API.CONSUMER.CREATE."+stream+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE."+stream+".*", "$JS.API.CONSUMER.MSG.NEXT."+stream+".*",
			"$JS.ACK."+stream+".>", "$JS.FC."+stream+".>")
	}
	for _, k := range l.Readers {
		user("      ", k, "reader: subscribes to data; publishes only info and stats requests"+map[bool]string{true: " and reads of the capture", false: ""}[l.JetStream],
			"publish: {allow: "+quoteAll(readPub...)+"}",
			"subscribe: {allow: "+quoteAll(schema.Prefix+".>", "_INBOX.>")+", deny: "+quoteAll(schema.Prefix+".*.ctl.>")+"}")
	}
	sh := p + ".shard"
	for _, k := range l.Shards {
		user("      ", k, "shard: sorts channel groups; reads raw blocks, publishes its output and heartbeats",
			"publish: {allow: "+quoteAll(sh+".out.*", sh+".beat", sh+".lease", sh+".nak")+"}",
			"subscribe: {allow: "+quoteAll(p+".raw.*", sh+".plan", sh+".resend.*", sh+".ask.*", "_INBOX.>")+"}")
	}
	w("    ]")
	w("    exports: [")
	w("      {service: %q, accounts: [%s]}", ctl+".>", AccountControl)
	w("      {service: %q, response_type: stream, accounts: [%s]}", "$SRV.>", AccountControl)
	w("    ]")
	if beh != "" {
		w("    imports: [")
		w("      {stream: {account: %s, subject: %q}}", AccountControl, beh)
		w("    ]")
	}
	w("  }")
	w("  %s: {", AccountControl)
	w("    users: [")
	opPub := []string{ctl + ".>", "$SRV.>"}
	if beh != "" {
		opPub = append(opPub, beh)
	}
	for _, k := range l.Operators {
		user("      ", k, "operator: calls the control service",
			"publish: {allow: "+quoteAll(opPub...)+"}",
			"subscribe: {allow: "+quoteAll("_INBOX.>")+"}")
	}
	for _, k := range l.Behaviour {
		user("      ", k, "behaviour: publishes the behaviour subject only",
			"publish: {allow: "+quoteAll(beh)+"}",
			"subscribe: {deny: "+quoteAll(">")+"}")
	}
	w("    ]")
	if beh != "" {
		w("    exports: [")
		w("      {stream: %q, accounts: [%s]}", beh, AccountData)
		w("    ]")
	}
	w("    imports: [")
	w("      # share: the server stamps each request with the caller's identity")
	w("      {service: {account: %s, subject: %q}, share: true}", AccountData, ctl+".>")
	w("      {service: {account: %s, subject: %q}}", AccountData, "$SRV.>")
	w("    ]")
	w("  }")
	w("}")
	if l.AnonymousReaders {
		w("# Clients without credentials read, as the reader.")
		w("no_auth_user: %s", l.Readers[0])
	}
	return b.String(), nil
}

// Credentials are the NKeys of a rig's roles on the embedded server, made
// fresh at every start: the pipeline's stays in memory; the operator's,
// the reader's (and the behaviour publisher's) are written for the user's
// tools by Save.
type Credentials struct {
	Pipeline, Operator, Reader nkeys.KeyPair
	Shard                      nkeys.KeyPair // remote sorting shards (nil: none)
	Behaviour                  nkeys.KeyPair // nil without a behaviour subject
}

// NewCredentials makes fresh NKeys for each role (behaviour: also a
// behaviour publisher's).
func NewCredentials(behaviour bool) (*Credentials, error) {
	c := &Credentials{}
	keys := []*nkeys.KeyPair{&c.Pipeline, &c.Operator, &c.Reader}
	if behaviour {
		keys = append(keys, &c.Behaviour)
	}
	for _, k := range keys {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("stream: credentials: %w", err)
		}
		*k = kp
	}
	return c, nil
}

// AddShard makes the key of the shard role (remote sorting: spikeline
// shard) unless c has one: only a rig that sorts on shards lets them in.
func (c *Credentials) AddShard() error {
	if c.Shard != nil {
		return nil
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return fmt.Errorf("stream: credentials: %w", err)
	}
	c.Shard = kp
	return nil
}

func publicKey(kp nkeys.KeyPair) string {
	if kp == nil {
		return ""
	}
	pub, _ := kp.PublicKey()
	return pub
}

// Layout returns the layout of rig with c's keys.
func (c *Credentials) Layout(rig, behaviourSubject string, anonymousReaders, jetStream bool) Layout {
	l := Layout{Rig: rig, Pipeline: []string{publicKey(c.Pipeline)}, Operators: []string{publicKey(c.Operator)},
		Readers: []string{publicKey(c.Reader)}, AnonymousReaders: anonymousReaders, JetStream: jetStream}
	if c.Shard != nil {
		l.Shards = []string{publicKey(c.Shard)}
	}
	if behaviourSubject != "" {
		l.BehaviourSubject = behaviourSubject
		if c.Behaviour != nil {
			l.Behaviour = []string{publicKey(c.Behaviour)}
		}
	}
	return l
}

// Roles maps each public key of c to its role, for the control service's
// audit records.
func (c *Credentials) Roles() map[string]string {
	m := map[string]string{publicKey(c.Pipeline): RolePipeline, publicKey(c.Operator): RoleOperator, publicKey(c.Reader): RoleReader}
	if c.Behaviour != nil {
		m[publicKey(c.Behaviour)] = RoleBehaviour
	}
	if c.Shard != nil {
		m[publicKey(c.Shard)] = RoleShard
	}
	return m
}

// RunFile tells tools on the same machine how to reach a running
// pipeline's embedded server: its URL and the seed files of the roles.
// It is written as nats.json beside the seeds.
type RunFile struct {
	Rig           string    `json:"rig"`
	URL           string    `json:"url"`
	PID           int       `json:"pid"`
	Started       time.Time `json:"started"`
	Operator      string    `json:"operator"`            // NKey seed file of the operator (nats --nkey FILE)
	Reader        string    `json:"reader"`              // NKey seed file of the reader
	Behaviour     string    `json:"behaviour,omitempty"` // NKey seed file of the behaviour publisher
	Shard         string    `json:"shard,omitempty"`     // NKey seed file of remote sorting shards
	AnonymousRead bool      `json:"anonymous_read"`      // clients without credentials read
}

// CredentialsDir returns the per-user directory of rig's credentials:
// $XDG_RUNTIME_DIR/spikeline/<rig> (a tmpfs only the user can enter,
// emptied at logout), or else <user config dir>/spikeline/run/<rig>.
func CredentialsDir(rig string) (string, error) {
	if err := schema.ValidToken(rig); err != nil {
		return "", fmt.Errorf("stream: credentials: rig: %w", err)
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "spikeline", rig), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("stream: credentials: no per-user directory: %w", err)
	}
	return filepath.Join(d, "spikeline", "run", rig), nil
}

// RunFileName is the name of the RunFile in a credentials directory.
const RunFileName = "nats.json"

// writePrivate writes data to path readable by the user only (0600),
// replacing it atomically.
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// privateDir creates dir (and its parents) for the user only and checks
// that nobody else can enter it.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s is open to other users (%v) and cannot be closed: %w", dir, st.Mode().Perm(), err)
		}
	}
	return nil
}

// Save writes the operator's, reader's (and behaviour publisher's) seeds
// and the run file into dir, each readable by the user only (0600, in a
// 0700 directory), and returns the run file with their paths. The
// pipeline's seed is not written.
func (c *Credentials) Save(dir string, rf RunFile) (RunFile, error) {
	if err := privateDir(dir); err != nil {
		return rf, fmt.Errorf("stream: credentials directory: %w", err)
	}
	seed := func(kp nkeys.KeyPair, name string) (string, error) {
		s, err := kp.Seed()
		if err != nil {
			return "", err
		}
		path := filepath.Join(dir, name)
		if err := writePrivate(path, append(s, '\n')); err != nil {
			return "", fmt.Errorf("stream: credentials: %w", err)
		}
		return path, nil
	}
	var err error
	if rf.Operator, err = seed(c.Operator, RoleOperator+".nk"); err != nil {
		return rf, err
	}
	if rf.Reader, err = seed(c.Reader, RoleReader+".nk"); err != nil {
		return rf, err
	}
	if c.Behaviour != nil {
		if rf.Behaviour, err = seed(c.Behaviour, RoleBehaviour+".nk"); err != nil {
			return rf, err
		}
	}
	if c.Shard != nil {
		if rf.Shard, err = seed(c.Shard, RoleShard+".nk"); err != nil {
			return rf, err
		}
	}
	b, _ := json.MarshalIndent(rf, "", "  ")
	if err := writePrivate(filepath.Join(dir, RunFileName), append(b, '\n')); err != nil {
		return rf, fmt.Errorf("stream: credentials: %w", err)
	}
	return rf, nil
}

// ReadRunFile reads the run file in dir. A missing file is an error
// wrapping fs.ErrNotExist.
func ReadRunFile(dir string) (RunFile, error) {
	var rf RunFile
	b, err := os.ReadFile(filepath.Join(dir, RunFileName))
	if err != nil {
		return rf, err
	}
	if err := json.Unmarshal(b, &rf); err != nil {
		return rf, fmt.Errorf("stream: %s: %w", filepath.Join(dir, RunFileName), err)
	}
	return rf, nil
}

// RemoveCredentials removes the files Save wrote in dir (the keys die with
// the server anyway) if the run file there is rf's.
func RemoveCredentials(dir string, rf RunFile) error {
	cur, err := ReadRunFile(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || cur.PID != rf.PID || cur.URL != rf.URL {
		return err // another run's now
	}
	var errs []error
	for _, p := range []string{filepath.Join(dir, RunFileName), rf.Operator, rf.Reader, rf.Behaviour, rf.Shard} {
		if p != "" {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Alive reports whether the process that wrote the run file still runs
// (on systems where that cannot be told, whether it named one).
func (rf RunFile) Alive() bool { return processAlive(rf.PID) }
