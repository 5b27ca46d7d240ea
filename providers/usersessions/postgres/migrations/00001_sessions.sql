-- The session store of sessiond: online and offline user sessions in one table, told apart
-- by the offline flag in the key (as Keycloak's persistent sessions), their client sessions,
-- the runtime's small records and the revocation-push outbox.
--
-- Ids that lists page through are COLLATE "C": keyset paging compares them bytewise, as Go
-- does, whatever the database's locale.

-- +goose Up
CREATE TABLE user_session (
    realm_id          text        NOT NULL,
    id                text        COLLATE "C" NOT NULL,
    offline           boolean     NOT NULL,
    -- Stream partitions: a hash of id computed by the provider, so that parallel preload
    -- workers read disjoint parts (id_hash % n = i).
    id_hash           integer     NOT NULL,
    user_id           text        NOT NULL,
    login_username    text        NOT NULL,
    ip_address        text        NOT NULL,
    user_agent        text        NOT NULL,
    auth_method       text        NOT NULL,
    broker_session_id text        NOT NULL,
    broker_user_id    text        NOT NULL,
    remember_me       boolean     NOT NULL,
    state             text        NOT NULL,
    started           timestamptz NOT NULL,
    last_refresh      timestamptz NOT NULL,
    -- When the session ends by its own rules, as the core computed them; cleanup is a
    -- range scan of this column's index.
    expires_at        timestamptz NOT NULL,
    notes             jsonb       NOT NULL,
    -- Optimistic locking: every Update must name the version it read.
    version           bigint      NOT NULL,
    PRIMARY KEY (realm_id, id, offline)
);
-- A user's sessions (logout of a user, the account console).
CREATE INDEX user_session_user ON user_session (realm_id, user_id, offline);
-- Recently active sessions (partial preload, ActiveSince).
CREATE INDEX user_session_refresh ON user_session (realm_id, offline, last_refresh);
-- Cleanup.
CREATE INDEX user_session_expires ON user_session (expires_at);
-- Identity-brokering back-channel logout finds sessions by the broker's session id.
CREATE INDEX user_session_broker ON user_session (realm_id, broker_session_id) WHERE broker_session_id <> '';

CREATE TABLE client_session (
    realm_id                        text        NOT NULL,
    user_session_id                 text        COLLATE "C" NOT NULL,
    offline                         boolean     NOT NULL,
    client_id                       text        NOT NULL,
    started                         timestamptz NOT NULL,
    last_refresh                    timestamptz NOT NULL,
    expires_at                      timestamptz NOT NULL,
    auth_method                     text        NOT NULL,
    redirect_uri                    text        NOT NULL,
    action                          text        NOT NULL,
    scope                           text        NOT NULL,
    notes                           jsonb       NOT NULL,
    current_refresh_token           text        NOT NULL,
    current_refresh_token_use_count integer     NOT NULL,
    previous_refresh_token          text        NOT NULL,
    rotated_at                      timestamptz NOT NULL,
    version                         bigint      NOT NULL,
    PRIMARY KEY (realm_id, user_session_id, offline, client_id),
    FOREIGN KEY (realm_id, user_session_id, offline)
        REFERENCES user_session (realm_id, id, offline) ON DELETE CASCADE
);
-- A client's sessions: counts per client, sessions of a client, removal of a client.
CREATE INDEX client_session_client ON client_session (realm_id, client_id, offline);
-- Cleanup of client sessions that expire before their user session.
CREATE INDEX client_session_expires ON client_session (expires_at);

CREATE TABLE record (
    kind       text        NOT NULL,
    record_key text        COLLATE "C" NOT NULL,
    value      bytea       NOT NULL,
    version    bigint      NOT NULL,
    updated    timestamptz NOT NULL,
    PRIMARY KEY (kind, record_key)
);

CREATE TABLE delivery (
    id           text        COLLATE "C" PRIMARY KEY,
    realm_id     text        NOT NULL,
    client_id    text        NOT NULL,
    kind         text        NOT NULL,
    target       text        NOT NULL,
    payload      bytea       NOT NULL,
    state        text        NOT NULL,
    attempts     integer     NOT NULL,
    next_attempt timestamptz NOT NULL,
    last_error   text        NOT NULL,
    created      timestamptz NOT NULL,
    updated      timestamptz NOT NULL
);
-- What is due: Claim.
CREATE INDEX delivery_due ON delivery (next_attempt, id) WHERE state = 'pending';
-- A realm's deliveries, in id order.
CREATE INDEX delivery_realm ON delivery (realm_id, id);

-- +goose Down
DROP TABLE delivery;
DROP TABLE record;
DROP TABLE client_session;
DROP TABLE user_session;
