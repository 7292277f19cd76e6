-- A group halts on the machines that failed its rollout's version since the rollout started
-- (or the group was last resumed), each once: an error a machine reported is counted from
-- the status history, which keeps it, rather than from the instance's current status, which
-- a retry overwrites. rollout_started_at is when the rollout of rollout_version began
-- (its first grant; 0 for rollouts started before this migration: counted since the last
-- resume, as before); the index serves the count of the errors of a group's version.

ALTER TABLE update_groups ADD COLUMN rollout_started_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX instance_history_failures ON instance_history (group_id, version, status, created_at, instance_id);
