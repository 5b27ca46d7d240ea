-- The PostgreSQL provider's second migration, so that both run the same statements: the
-- indexes for cleanup and partial preload move to coarse buckets of the clocks a refresh
-- rewrites (on PostgreSQL, so that a refresh is a heap-only update). Times are Unix
-- microseconds: an hour is 3600000000 of them, a day 86400000000. SQLite adds generated
-- columns as VIRTUAL only; an index stores their values.

-- +goose Up
ALTER TABLE user_session ADD COLUMN expires_hour INTEGER NOT NULL
    GENERATED ALWAYS AS (expires_at - expires_at % 3600000000) VIRTUAL;
ALTER TABLE user_session ADD COLUMN refresh_day INTEGER NOT NULL
    GENERATED ALWAYS AS (last_refresh - last_refresh % 86400000000) VIRTUAL;
ALTER TABLE client_session ADD COLUMN expires_hour INTEGER NOT NULL
    GENERATED ALWAYS AS (expires_at - expires_at % 3600000000) VIRTUAL;

DROP INDEX user_session_expires;
DROP INDEX user_session_refresh;
DROP INDEX client_session_expires;
CREATE INDEX user_session_expires ON user_session (expires_hour);
CREATE INDEX client_session_expires ON client_session (expires_hour);
CREATE INDEX user_session_refresh ON user_session (realm_id, offline, refresh_day);

-- +goose Down
DROP INDEX user_session_expires;
DROP INDEX client_session_expires;
DROP INDEX user_session_refresh;
ALTER TABLE user_session DROP COLUMN expires_hour;
ALTER TABLE user_session DROP COLUMN refresh_day;
ALTER TABLE client_session DROP COLUMN expires_hour;
CREATE INDEX user_session_refresh ON user_session (realm_id, offline, last_refresh);
CREATE INDEX user_session_expires ON user_session (expires_at);
CREATE INDEX client_session_expires ON client_session (expires_at);
