-- The console's model, after Nebraska's: applications, their packages and channels, update
-- groups with their rollout policy, instances (one per machine and application), the events
-- they report, their status history, the activity log, and the operators (users, sessions,
-- API tokens). Portable SQL for SQLite and PostgreSQL; the store replaces AUTO_ID with each
-- one's auto-numbered primary key. Times are Unix microseconds (BIGINT), so that the
-- console's clock, not the database's, decides what "within the last hour" is.

CREATE TABLE applications (
	id          TEXT PRIMARY KEY,          -- lower case, no braces: a UUID or a product id
	product_id  TEXT UNIQUE,               -- e.g. io.github.cairn-os.cairn; NULL for none
	name        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL
);

CREATE TABLE packages (
	id              TEXT PRIMARY KEY,
	app_id          TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
	version         TEXT NOT NULL,
	board           TEXT NOT NULL DEFAULT '',
	filename        TEXT NOT NULL,         -- the name machines download it as
	file            TEXT NOT NULL DEFAULT '', -- the hosted file in the payload directory
	size            BIGINT NOT NULL,
	sha256          TEXT NOT NULL,         -- hex
	sha1            TEXT NOT NULL DEFAULT '', -- base64, Omaha's "hash"
	signature       TEXT NOT NULL,         -- verified, unverified
	signature_error TEXT NOT NULL DEFAULT '',
	release_notes   TEXT NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL,
	created_by      TEXT NOT NULL DEFAULT '',
	UNIQUE (app_id, version)
);

CREATE TABLE channels (
	id         TEXT PRIMARY KEY,
	app_id     TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	package_id TEXT REFERENCES packages (id),
	created_at BIGINT NOT NULL,
	UNIQUE (app_id, name)
);

CREATE TABLE update_groups (
	id               TEXT PRIMARY KEY,
	app_id           TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
	name             TEXT NOT NULL,
	description      TEXT NOT NULL DEFAULT '',
	track            TEXT NOT NULL,        -- what machines send as their track (GROUP)
	channel_id       TEXT REFERENCES channels (id) ON DELETE SET NULL,
	policy           TEXT NOT NULL,        -- rollout.Policy as JSON
	paused           BOOLEAN NOT NULL DEFAULT FALSE,
	paused_reason    TEXT NOT NULL DEFAULT '',
	paused_by        TEXT NOT NULL DEFAULT '',
	paused_at        BIGINT NOT NULL DEFAULT 0,
	resumed_at       BIGINT NOT NULL DEFAULT 0, -- failures before it do not count to a halt
	approved_version TEXT NOT NULL DEFAULT '',
	rollout_version  TEXT NOT NULL DEFAULT '',  -- the version whose rollout started last
	created_at       BIGINT NOT NULL,
	UNIQUE (app_id, track)
);

CREATE TABLE instances (
	app_id              TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
	id                  TEXT NOT NULL,     -- the machine id
	group_id            TEXT REFERENCES update_groups (id) ON DELETE SET NULL,
	track               TEXT NOT NULL DEFAULT '',
	alias               TEXT NOT NULL DEFAULT '',
	ip                  TEXT NOT NULL DEFAULT '',
	version             TEXT NOT NULL DEFAULT '',
	board               TEXT NOT NULL DEFAULT '',
	oem                 TEXT NOT NULL DEFAULT '',
	oem_version         TEXT NOT NULL DEFAULT '',
	aleph_version       TEXT NOT NULL DEFAULT '',
	status              TEXT NOT NULL DEFAULT 'undefined',
	status_at           BIGINT NOT NULL DEFAULT 0,
	error_code          INTEGER NOT NULL DEFAULT 0,
	update_in_progress  BOOLEAN NOT NULL DEFAULT FALSE,
	granted_version     TEXT NOT NULL DEFAULT '',
	granted_at          BIGINT NOT NULL DEFAULT 0,
	rolled_back_version TEXT NOT NULL DEFAULT '',
	hold                TEXT NOT NULL DEFAULT '', -- why the last check got no offer (rollout.Reason)
	hold_reason         TEXT NOT NULL DEFAULT '', -- the same, for people
	progress            DOUBLE PRECISION NOT NULL DEFAULT 0,
	step                TEXT NOT NULL DEFAULT '',
	created_at          BIGINT NOT NULL,
	last_check_at       BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, id)
);
CREATE INDEX instances_in_flight ON instances (group_id, update_in_progress, granted_at);
CREATE INDEX instances_granted ON instances (group_id, granted_at);
CREATE INDEX instances_target ON instances (group_id, granted_version, status, status_at);
CREATE INDEX instances_version ON instances (app_id, version);
CREATE INDEX instances_status ON instances (app_id, status);
CREATE INDEX instances_last_check ON instances (app_id, last_check_at);

CREATE TABLE events (
	id               AUTO_ID,
	app_id           TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
	instance_id      TEXT NOT NULL,
	group_id         TEXT,
	type             INTEGER NOT NULL,
	result           INTEGER NOT NULL,
	error_code       INTEGER NOT NULL DEFAULT 0,
	previous_version TEXT NOT NULL DEFAULT '',
	version          TEXT NOT NULL DEFAULT '', -- what the machine ran when it reported
	created_at       BIGINT NOT NULL
);
CREATE INDEX events_instance ON events (app_id, instance_id, id);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE instance_history (
	id          AUTO_ID,
	app_id      TEXT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
	instance_id TEXT NOT NULL,
	group_id    TEXT,
	status      TEXT NOT NULL,
	version     TEXT NOT NULL DEFAULT '', -- the version the update is to
	error_code  INTEGER NOT NULL DEFAULT 0,
	created_at  BIGINT NOT NULL
);
CREATE INDEX instance_history_instance ON instance_history (app_id, instance_id, id);

CREATE TABLE activity (
	id          AUTO_ID,
	created_at  BIGINT NOT NULL,
	app_id      TEXT NOT NULL DEFAULT '',
	group_id    TEXT NOT NULL DEFAULT '',
	instance_id TEXT NOT NULL DEFAULT '',
	version     TEXT NOT NULL DEFAULT '',
	severity    TEXT NOT NULL,             -- info, warning, error
	kind        TEXT NOT NULL,             -- e.g. group.paused, rollout.halted, package.uploaded
	actor       TEXT NOT NULL,             -- a user, "rollout" or "omaha"
	message     TEXT NOT NULL
);
CREATE INDEX activity_app ON activity (app_id, id);
CREATE INDEX activity_group ON activity (group_id, id);

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,           -- bcrypt
	role          TEXT NOT NULL,           -- admin, viewer
	created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,           -- SHA-256 of the cookie's secret, hex
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	token_hash   TEXT NOT NULL UNIQUE,     -- SHA-256 of the token, hex
	role         TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	last_used_at BIGINT NOT NULL DEFAULT 0,
	expires_at   BIGINT NOT NULL DEFAULT 0 -- 0: never
);
