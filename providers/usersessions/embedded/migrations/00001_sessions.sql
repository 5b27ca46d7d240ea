-- The session store of sessiond in one SQLite file: the tables and indexes of the
-- PostgreSQL provider's first migration, in SQLite's types. Times are Unix microseconds,
-- booleans 0 and 1, notes JSON text. STRICT tables refuse a value of the wrong type;
-- WITHOUT ROWID stores each table in its primary key's order.

-- +goose Up
CREATE TABLE user_session (
    realm_id          TEXT    NOT NULL,
    id                TEXT    NOT NULL,
    offline           INTEGER NOT NULL,
    id_hash           INTEGER NOT NULL,
    user_id           TEXT    NOT NULL,
    login_username    TEXT    NOT NULL,
    ip_address        TEXT    NOT NULL,
    user_agent        TEXT    NOT NULL,
    auth_method       TEXT    NOT NULL,
    broker_session_id TEXT    NOT NULL,
    broker_user_id    TEXT    NOT NULL,
    remember_me       INTEGER NOT NULL,
    state             TEXT    NOT NULL,
    started           INTEGER NOT NULL,
    last_refresh      INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    notes             TEXT    NOT NULL,
    version           INTEGER NOT NULL,
    PRIMARY KEY (realm_id, id, offline)
) STRICT, WITHOUT ROWID;
CREATE INDEX user_session_user ON user_session (realm_id, user_id, offline);
CREATE INDEX user_session_refresh ON user_session (realm_id, offline, last_refresh);
CREATE INDEX user_session_expires ON user_session (expires_at);
CREATE INDEX user_session_broker ON user_session (realm_id, broker_session_id) WHERE broker_session_id <> '';

CREATE TABLE client_session (
    realm_id                        TEXT    NOT NULL,
    user_session_id                 TEXT    NOT NULL,
    offline                         INTEGER NOT NULL,
    client_id                       TEXT    NOT NULL,
    started                         INTEGER NOT NULL,
    last_refresh                    INTEGER NOT NULL,
    expires_at                      INTEGER NOT NULL,
    auth_method                     TEXT    NOT NULL,
    redirect_uri                    TEXT    NOT NULL,
    action                          TEXT    NOT NULL,
    scope                           TEXT    NOT NULL,
    notes                           TEXT    NOT NULL,
    current_refresh_token           TEXT    NOT NULL,
    current_refresh_token_use_count INTEGER NOT NULL,
    previous_refresh_token          TEXT    NOT NULL,
    rotated_at                      INTEGER NOT NULL,
    version                         INTEGER NOT NULL,
    PRIMARY KEY (realm_id, user_session_id, offline, client_id),
    FOREIGN KEY (realm_id, user_session_id, offline)
        REFERENCES user_session (realm_id, id, offline) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX client_session_client ON client_session (realm_id, client_id, offline);
CREATE INDEX client_session_expires ON client_session (expires_at);

CREATE TABLE record (
    kind       TEXT    NOT NULL,
    record_key TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    updated    INTEGER NOT NULL,
    PRIMARY KEY (kind, record_key)
) STRICT, WITHOUT ROWID;

CREATE TABLE delivery (
    id           TEXT    NOT NULL PRIMARY KEY,
    realm_id     TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT    NOT NULL,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX delivery_due ON delivery (next_attempt, id) WHERE state = 'pending';
CREATE INDEX delivery_realm ON delivery (realm_id, id);

-- +goose Down
DROP TABLE delivery;
DROP TABLE record;
DROP TABLE client_session;
DROP TABLE user_session;
