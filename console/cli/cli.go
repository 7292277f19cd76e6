// Package cli is the cairn-console command: serve (the update service, the API, the
// metrics, the rollout loop; -import-dir publishes payloads from a directory, for
// development and tests), user add and passwd, token create, migrate, and simulate (a
// fleet of simulated machines that check in at a console).
package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/cairn-os/cairn/console/auth"
	"github.com/cairn-os/cairn/console/cluster"
	"github.com/cairn-os/cairn/console/payloads"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/server"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// Defaults of the flags.
const (
	DefaultListen     = "127.0.0.1:8000"
	DefaultDB         = "/var/lib/cairn-console/console.db"
	DefaultPayloadDir = "/var/lib/cairn-console/payloads"
)

const usage = `usage: cairn-console <command> [flags]

commands:
  serve              run the console: Omaha at /v1/update/, payloads, the API at /api/v1, /metrics
  migrate            bring the database's schema up to this console's
  user add NAME      add an operator (-role admin|viewer; the password from -password-file or stdin)
  user passwd NAME   set an operator's password
  token create       make an API token for a script (-user, -name, -role, -expires); prints the secret
  simulate           run simulated machines against a console (-url, -hosts, -group, -failure-rate, -speed, ...)

'cairn-console <command> -h' lists the command's flags.
`

// Run is the cairn-console command with os.Stdin as its input.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return (&CLI{Stdin: os.Stdin}).Run(ctx, args, stdout, stderr)
}

// CLI is the command with its input.
type CLI struct {
	Stdin io.Reader
}

// Run runs the command args and returns its exit code: 0 done, 1 failed, 2 misused.
func (c *CLI) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "serve":
		err = c.serve(ctx, rest, stdout, stderr)
	case cmd == "migrate":
		err = c.migrate(ctx, rest, stdout, stderr)
	case cmd == "user" && len(rest) > 0 && (rest[0] == "add" || rest[0] == "passwd"):
		err = c.user(ctx, rest[0], rest[1:], stdout, stderr)
	case cmd == "token" && len(rest) > 0 && rest[0] == "create":
		err = c.token(ctx, rest[1:], stdout, stderr)
	case cmd == "simulate":
		err = c.simulate(ctx, rest, stdout, stderr)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cairn-console: unknown command %q\n%s", strings.Join(args, " "), usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if _, ok := errors.AsType[usageError](err); ok {
		fmt.Fprintf(stderr, "cairn-console: %v\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "cairn-console: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cairn-console "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// dbFlags are the flags that open the database.
type dbFlags struct {
	dsn, sync string
}

func (d *dbFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&d.dsn, "db", DefaultDB, "the database: a SQLite file, or PostgreSQL (postgres://user@host/db or \"host=... dbname=...\")")
	fs.StringVar(&d.sync, "db-sync", "full", "SQLite: full (a committed change survives a power cut) or normal (it survives the console's death; faster)")
}

func (d *dbFlags) open(ctx context.Context) (*store.Store, error) {
	if !store.IsPostgres(d.dsn) {
		if err := os.MkdirAll(dirOf(strings.TrimPrefix(d.dsn, "sqlite:")), 0o750); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, d.dsn, store.Options{Sync: d.sync})
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i > 0 {
		return p[:i]
	}
	return "."
}

func newLog(stderr io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("-log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}

func (c *CLI) serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("serve", stderr)
	var db dbFlags
	db.add(fs)
	listen := fs.String("listen", DefaultListen, "address to listen on (loopback by default; put a TLS proxy in front for a network)")
	payloadDir := fs.String("payload-dir", DefaultPayloadDir, "where uploaded payloads are kept")
	keys := fs.String("keys", "", "ed25519 public keys (a PEM file, or a directory of *.pem) that uploaded payloads must be signed with to be published")
	baseURL := fs.String("base-url", "", "the console's URL as machines reach it, for payload URLs (default: the host each request came to)")
	importDir := fs.String("import-dir", "", "development: import DIR/<track>/*.cairn at start, each track a group, and publish the newest verified payload of each")
	appID := fs.String("app-id", updateconf.Defaults["APP_ID"], "with -import-dir: the application the payloads are for")
	migrate := fs.Bool("migrate", true, "migrate the database's schema at start (else refuse a schema that is not this console's)")
	maxUpload := fs.Int64("max-upload", payloads.DefaultMaxSize, "largest payload upload accepted, in bytes")
	reconcile := fs.Duration("reconcile", 30*time.Second, "how often the rollout loop marks timed-out updates and halts groups past their limits")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	etcdEndpoints := fs.String("etcd-endpoints", "", "the fleet's etcd (comma-separated URLs), for the reboot lock and flannel's leases on the pages (none: not shown)")
	kubeconfig := fs.String("kubeconfig", "", "a kubeconfig file, for the Kubernetes nodes on the pages (none: not shown)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("serve: unexpected arguments %q", fs.Args())}
	}
	log, err := newLog(stderr, *level)
	if err != nil {
		return err
	}
	var pub []ed25519.PublicKey
	if *keys != "" {
		if pub, err = payload.LoadPublicKeys(*keys); err != nil {
			return err
		}
	} else {
		log.Warn("no -keys: uploaded payloads are stored as unverified and cannot be published")
	}
	st, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if *migrate {
		applied, err := st.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			log.Info("database migrated", "versions", applied)
		}
	} else if err := st.CheckSchema(ctx); err != nil {
		return err
	}
	cfg := server.Config{Store: st, PayloadDir: *payloadDir, Keys: pub, BaseURL: *baseURL, MaxUpload: *maxUpload,
		ReconcileInterval: *reconcile, Log: log}
	if *etcdEndpoints != "" {
		cfg.EtcdEndpoints = strings.Split(*etcdEndpoints, ",")
		// The client dials lazily: an etcd that is down shows on the pages, it does not stop
		// the update service.
		if cfg.Etcd, err = clientv3.New(clientv3.Config{Endpoints: cfg.EtcdEndpoints, DialTimeout: 5 * time.Second,
			Logger: zap.NewNop()}); err != nil {
			return fmt.Errorf("-etcd-endpoints %s: %w", *etcdEndpoints, err)
		}
		defer cfg.Etcd.Close()
	}
	if *kubeconfig != "" {
		if cfg.Kube, err = cluster.LoadKubeconfig(*kubeconfig); err != nil {
			return err
		}
	}
	srv := server.New(cfg)
	if *importDir != "" {
		if err := srv.ImportDir(ctx, *importDir, *appID, "Cairn"); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	// The URL goes to stdout, so that a caller that asked for port 0 learns the port.
	fmt.Fprintf(stdout, "http://%s/\n", ln.Addr())
	if f, ok := stdout.(interface{ Sync() error }); ok {
		f.Sync() //nolint:errcheck // a pipe or a terminal
	}
	log.Info("serving", "addr", ln.Addr().String(), "db", st.Dialect(), "payloads", *payloadDir)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	hs.RegisterOnShutdown(srv.UI.Close) // open pages' streams would hold the shutdown up
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { srv.Run(rctx); close(done) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("connections still open at shutdown", "err", err)
		}
	}()
	err = hs.Serve(ln)
	cancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (c *CLI) migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("migrate", stderr)
	var db dbFlags
	db.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	applied, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "schema version %d: up to date\n", v)
		return nil
	}
	fmt.Fprintf(stdout, "schema version %d: applied %v\n", v, applied)
	return nil
}

// password reads a password from the file, or from the input (without echo on a terminal).
func (c *CLI) password(file string, stderr io.Writer) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if f, ok := c.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	line, err := bufio.NewReader(c.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (c *CLI) user(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	fs := flags("user "+sub, stderr)
	var db dbFlags
	db.add(fs)
	role := fs.String("role", store.RoleViewer, "admin (changes anything) or viewer (reads); user add only")
	pwFile := fs.String("password-file", "", "read the password from this file (default: standard input)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("user %s: want one user name", sub)}
	}
	name := fs.Arg(0)
	pw, err := c.password(*pwFile, stderr)
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	st, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.CheckSchema(ctx); err != nil {
		return err
	}
	if sub == "add" {
		ctx = store.WithAudit(ctx, store.Activity{Kind: "user.created", Actor: "cairn-console user add", Message: fmt.Sprintf("created user %s (%s)", name, *role)})
		u, err := st.CreateUser(ctx, name, hash, *role)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s (%s) added\n", u.Username, u.Role)
		return nil
	}
	u, err := st.User(ctx, name)
	if err != nil {
		return err
	}
	ctx = store.WithAudit(ctx, store.Activity{Kind: "user.updated", Actor: "cairn-console user passwd", Message: fmt.Sprintf("changed user %s: password", name)})
	if err := st.UpdateUser(ctx, u.ID, hash, ""); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "password of %s changed; its sessions ended\n", u.Username)
	return nil
}

func (c *CLI) token(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("token create", stderr)
	var db dbFlags
	db.add(fs)
	user := fs.String("user", "", "the user the token acts for")
	name := fs.String("name", "", "what uses the token (shown in the audit log)")
	role := fs.String("role", "", "admin or viewer (default: the user's; never more)")
	expires := fs.Duration("expires", 0, "how long the token lasts (0: until revoked)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *user == "" || *name == "" {
		return usageError{errors.New("token create: -user and -name are required")}
	}
	st, err := db.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.CheckSchema(ctx); err != nil {
		return err
	}
	u, err := st.User(ctx, *user)
	if err != nil {
		return err
	}
	r := *role
	if r == "" {
		r = u.Role
	}
	if u.Role != store.RoleAdmin && r == store.RoleAdmin {
		return fmt.Errorf("token: %s is a viewer: its tokens cannot be admin tokens", u.Username)
	}
	var exp time.Time
	if *expires > 0 {
		exp = time.Now().Add(*expires)
	}
	secret := auth.NewToken()
	ctx = store.WithAudit(ctx, store.Activity{Kind: "token.created", Actor: "cairn-console token create",
		Message: fmt.Sprintf("created API token %s (%s) for %s, %s", *name, r, u.Username, rollout.Duration(*expires))})
	if _, err := st.CreateToken(ctx, u.ID, *name, r, auth.Hash(secret), exp); err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	return nil
}
