// Package store is the console's database: applications, packages, channels, groups,
// instances, their events and status history, the activity log, users, sessions and API
// tokens (the model is Nebraska's, migrations in migrations/). It runs on SQLite
// (modernc.org/sqlite, pure Go: WAL, a busy timeout, foreign keys on, one writer connection
// beside a pool of readers) by default and on PostgreSQL (pgx) for a fleet that outgrows
// one machine. The SQL is written once, with ? placeholders rebound for PostgreSQL. Every
// write is a transaction that has committed when the call returns.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"
)

// Dialect is the database's SQL dialect.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: a name or version that must be unique is taken, or a change that would
	// leave the model inconsistent (deleting a published package).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: a value the model does not accept.
	ErrInvalid = errors.New("invalid")
	// ErrNotVerified: a package whose signature did not verify cannot be published.
	ErrNotVerified = errors.New("package signature not verified")
	// ErrSchemaTooNew: the database was migrated by a newer console.
	ErrSchemaTooNew = errors.New("database schema is newer than this cairn-console")
)

// Store is an open database.
type Store struct {
	dialect Dialect
	// w takes every write; on SQLite it has one connection, so that writers queue in Go
	// rather than fail on SQLite's lock. r serves reads (the same pool on PostgreSQL).
	w, r *sql.DB
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	rebound sync.Map // query → query with $n placeholders (PostgreSQL)
	// stmts holds SQLite's prepared statements of the readers (query → *sql.Stmt): modernc's
	// driver parses every statement it is given anew, which was a quarter of a routine
	// check's time. pgx caches its own on each connection.
	stmts  sync.Map
	nstmts atomic.Int32
}

// maxStmts bounds the prepared statements kept: the queries are the store's own, a few
// dozen, and a few hundred shapes of the ones built from filters.
const maxStmts = 1024

// prepared is query prepared on the readers, made once and kept (SQLite); nil on
// PostgreSQL, when the cache is full, or when it does not prepare (the caller runs the
// query as it is, and gets the error from there).
func (s *Store) prepared(ctx context.Context, query string) *sql.Stmt {
	if s.dialect != SQLite {
		return nil
	}
	if v, ok := s.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if s.nstmts.Load() >= maxStmts {
		return nil
	}
	st, err := s.r.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if v, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	s.nstmts.Add(1)
	return st
}

// Options tune Open.
type Options struct {
	// Readers is the number of SQLite reader connections (default 4).
	Readers int
	// Sync is SQLite's synchronous setting: "full" (default: a committed transaction
	// survives a power cut) or "normal" (it survives the console's death, not the
	// machine's; faster writes).
	Sync string
	// MaxConns bounds PostgreSQL's connection pool (default 16).
	MaxConns int
}

// IsPostgres reports whether dsn names a PostgreSQL database (a postgres:// or
// postgresql:// URL, or key=value settings with host= or dbname=) rather than a SQLite file.
func IsPostgres(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return true
	}
	for f := range strings.FieldsSeq(dsn) {
		if strings.HasPrefix(f, "host=") || strings.HasPrefix(f, "dbname=") {
			return true
		}
	}
	return false
}

// Open opens the database dsn names: PostgreSQL (IsPostgres) or a SQLite file (a path,
// optionally prefixed "sqlite:"), created if missing. It does not migrate: call Migrate.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	if IsPostgres(dsn) {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", redact(dsn), err)
		}
		n := o.MaxConns
		if n <= 0 {
			n = 16
		}
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("database %s: %w", redact(dsn), err)
		}
		return &Store{dialect: Postgres, w: db, r: db}, nil
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" {
		return nil, fmt.Errorf("database: %w: empty path", ErrInvalid)
	}
	sync := strings.ToUpper(o.Sync)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("database %s: %w: sync %q: want full or normal", path, ErrInvalid, o.Sync)
	}
	// Every connection: WAL (readers never wait for the writer), a busy timeout (another
	// process, such as cairn-console user add, may hold the write lock for a moment), foreign
	// keys enforced. Transactions of the writer begin IMMEDIATE: they take the write lock
	// first, so that a read-then-write transaction cannot fail half-way on a lock upgrade.
	common := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(" + sync + ")"
	w, err := sql.Open("sqlite", "file:"+path+common+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", "file:"+path+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	n := o.Readers
	if n <= 0 {
		n = 4
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	return &Store{dialect: SQLite, w: w, r: r}, nil
}

// redact drops a password from a DSN for error messages.
func redact(dsn string) string {
	if i := strings.Index(dsn, "password="); i >= 0 {
		end := strings.IndexAny(dsn[i:], " &")
		if end < 0 {
			return dsn[:i] + "password=xxx"
		}
		return dsn[:i] + "password=xxx" + dsn[i+end:]
	}
	if at := strings.LastIndex(dsn, "@"); at >= 0 {
		if scheme := strings.Index(dsn, "://"); scheme >= 0 && scheme < at {
			if colon := strings.Index(dsn[scheme+3:at], ":"); colon >= 0 {
				return dsn[:scheme+3+colon] + ":xxx" + dsn[at:]
			}
		}
	}
	return dsn
}

// Dialect is the database's dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the database.
func (s *Store) Close() error {
	s.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// q rebinds a query written with ? placeholders for the database.
func (s *Store) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	if v, ok := s.rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	s.rebound.Store(query, b.String())
	return b.String()
}

// Tx is one write transaction.
type Tx struct {
	s  *Store
	tx *sql.Tx
}

// A transaction's statements are not prepared (Store.prepared): preparing one on the
// database would wait for a connection, and SQLite's writer has only the one the
// transaction holds.
func (t *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.s.q(query), args...)
}

func (t *Tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.q(query), args...)
}

func (t *Tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.q(query), args...)
}

// Now is the store's clock.
func (t *Tx) Now() time.Time { return t.s.now() }

// Write runs f in a write transaction and commits it, with the context's audit entry
// (WithAudit); f's error rolls it back.
func (s *Store) Write(ctx context.Context, f func(*Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("database: begin: %w", err)
	}
	t := &Tx{s: s, tx: tx}
	if err := f(t); err != nil {
		return errors.Join(err, rollback(tx))
	}
	if err := t.writeAudit(ctx); err != nil {
		return errors.Join(err, rollback(tx))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("database: commit: %w", err)
	}
	return nil
}

// rollback ends a failed transaction; a connection already gone took it with it.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) && !errors.Is(err, driver.ErrBadConn) {
		return fmt.Errorf("database: rollback: %w", err)
	}
	return nil
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, s.q(query), args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, s.q(query), args...)
}

// newID is a random UUID (version 4), the form Nebraska gives its objects.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// micros and fromMicros convert times to and from the stored Unix microseconds; the zero
// time is 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// isUnique reports whether err is a unique constraint's violation.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}

// isForeignKey reports whether err is a foreign key's violation.
func isForeignKey(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "FOREIGN KEY constraint failed") || strings.Contains(s, "SQLSTATE 23503")
}

// NormalizeAppID is an Omaha app id as the store keeps it: lower case, without the braces
// of a GUID, as Nebraska compares them.
func NormalizeAppID(id string) string {
	id = strings.TrimSpace(id)
	if len(id) > 2 && id[0] == '{' && id[len(id)-1] == '}' {
		id = strings.TrimSpace(id[1 : len(id)-1])
	}
	return strings.ToLower(id)
}
