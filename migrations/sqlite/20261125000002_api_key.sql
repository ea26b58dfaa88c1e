-- API keys and their status history. Identical DDL for PostgreSQL (20261125000002_api_key.sql
-- there); never edit after shipping.

-- One row per issued (or imported) key. The key itself is never stored: `key_hash` is
-- HMAC-SHA-256 under the server pepper (or plain SHA-256 for keys imported from another
-- system, `hash_algorithm = 'sha256'`), unique, so verification is one indexed lookup.
-- `owner_user_id` is set for personal access tokens (bounded by that user's permissions).
-- JSON columns (scopes, endpoints, ip_allowlist, metadata) are TEXT on both backends.
create table api_key (
    api_key_id        text primary key,
    organization_id   text not null references organization (organization_id) on delete cascade,
    owner_user_id     text references app_user (user_id) on delete cascade,
    name              text not null,
    description       text not null default '',
    environment       text not null check (environment in ('live', 'test')),
    key_hash          text not null unique,
    hash_algorithm    text not null default 'hmac-sha256' check (hash_algorithm in ('hmac-sha256', 'sha256')),
    display_prefix    text not null,
    status            text not null default 'active' check (status in ('active', 'disabled', 'revoked')),
    category          text not null default 'custom' check (category in ('basic', 'read_only', 'admin', 'custom')),
    scopes            text not null default '{}',
    endpoints         text not null default '[]',
    ip_allowlist      text not null default '[]',
    require_signature bigint not null default 0,
    metadata          text not null default '{}',
    -- When the key stops working by date (null: never).
    expires_at        bigint,
    -- Set on the old key when it is rolled: it keeps working until then, then stops.
    rolled_to_key_id  text,
    created_by        text,
    created_at        bigint not null,
    updated_at        bigint not null,
    last_used_at      bigint
);
create index api_key_org_idx on api_key (organization_id, created_at);

-- The status timeline of a key: every transition with actor, time, reason and source IP.
create table api_key_event (
    api_key_event_id text primary key,
    api_key_id       text not null references api_key (api_key_id) on delete cascade,
    organization_id  text not null references organization (organization_id) on delete cascade,
    kind             text not null check (kind in ('created', 'imported', 'edited', 'disabled', 'enabled', 'rolled', 'revoked', 'expired')),
    actor            text,
    reason           text,
    source_ip        text,
    detail           text not null default '{}',
    occurred_at      bigint not null
);
create index api_key_event_key_idx on api_key_event (api_key_id, occurred_at);
