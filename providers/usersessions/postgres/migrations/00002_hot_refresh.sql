-- A refresh as a heap-only (HOT) update. A refresh rewrites the session's clocks
-- (last_refresh, expires_at); while either column was indexed, no refresh could be a HOT
-- update: each wrote a new entry into every index of the table, and each left a dead row
-- version that only VACUUM reclaims (with autovacuum off, the tables grew by one row per
-- refresh). Now the indexes that cleanup and partial preload need are on coarse buckets
-- of those clocks, generated columns that change once an hour (expiry) or once a day (last
-- refresh) of a session's life, and the tables leave room on each page for the new row
-- version: the common refresh is a HOT update, whose old versions the next visit to the
-- page prunes without VACUUM.
--
-- Cleanup reads expires_hour <= the cutoff's hour and checks expires_at; ActiveSince reads
-- refresh_day >= the day of the bound and checks last_refresh.
--
-- Adding a stored generated column rewrites each table once (under an exclusive lock),
-- which also lays every existing page out with the new fill factor.

-- +goose Up
ALTER TABLE user_session SET (fillfactor = 70);
ALTER TABLE client_session SET (fillfactor = 70);

ALTER TABLE user_session
    ADD COLUMN expires_hour timestamptz NOT NULL
        GENERATED ALWAYS AS (date_trunc('hour', expires_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') STORED,
    ADD COLUMN refresh_day timestamptz NOT NULL
        GENERATED ALWAYS AS (date_trunc('day', last_refresh AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') STORED;
ALTER TABLE client_session
    ADD COLUMN expires_hour timestamptz NOT NULL
        GENERATED ALWAYS AS (date_trunc('hour', expires_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') STORED;

DROP INDEX user_session_expires;
DROP INDEX user_session_refresh;
DROP INDEX client_session_expires;
-- Cleanup, by the hour a session expires in.
CREATE INDEX user_session_expires ON user_session (expires_hour);
CREATE INDEX client_session_expires ON client_session (expires_hour);
-- Recently active sessions (partial preload, ActiveSince), by the day of the last refresh.
CREATE INDEX user_session_refresh ON user_session (realm_id, offline, refresh_day);

-- +goose Down
DROP INDEX user_session_expires;
DROP INDEX client_session_expires;
DROP INDEX user_session_refresh;
ALTER TABLE user_session DROP COLUMN expires_hour, DROP COLUMN refresh_day;
ALTER TABLE client_session DROP COLUMN expires_hour;
CREATE INDEX user_session_refresh ON user_session (realm_id, offline, last_refresh);
CREATE INDEX user_session_expires ON user_session (expires_at);
CREATE INDEX client_session_expires ON client_session (expires_at);
ALTER TABLE user_session RESET (fillfactor);
ALTER TABLE client_session RESET (fillfactor);
