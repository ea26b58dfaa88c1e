-- Request signatures. Identical DDL on both backends; never edit after shipping.

-- The salt of a key's signing secret. The secret itself is never stored: it is derived from
-- the server pepper, the key id and this salt (see `keys::signature`). Keys created before
-- this migration get the empty salt, which is still unguessable without the pepper.
alter table api_key add column signing_salt text not null default '';

-- Signatures accepted in the last tolerance window (300 s), so that a replayed request is
-- refused on every instance sharing the database. Old rows are pruned in the background.
create table api_key_signature (
    api_key_id text not null references api_key (api_key_id) on delete cascade,
    signature  text not null,
    seen_at    bigint not null,
    primary key (api_key_id, signature)
);
create index api_key_signature_seen_idx on api_key_signature (seen_at);
