-- What Cairn's engine reports beyond Omaha (update-engine/omaha.Report): the operation of
-- the update a machine runs, beside 0001's step and progress, and when it said so; the
-- machine's pods (the bounded list as JSON, '' when it never reported any), how many it has
-- and when the list last changed; and what its last rollback report said: when, and the
-- boot tries the version had and had left.

ALTER TABLE instances ADD COLUMN operation TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN progress_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN pods TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN pods_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN pods_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN rolled_back_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN rollback_tries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN rollback_tries_left INTEGER NOT NULL DEFAULT 0;
