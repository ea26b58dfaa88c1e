-- Hardening. Identical DDL on both backends (a test keeps the two sets in step); never edit
-- after shipping.

-- One key value, one key: the fingerprint is HMAC(pepper, SHA-256(key)), computable from a
-- plaintext key and from another system's SHA-256 alike, so a unique index refuses the same
-- value stored twice in two forms (or by two organizations). Keys stored before this
-- migration have none (NULLs do not collide).
alter table api_key add column key_fingerprint text;
create unique index api_key_fingerprint_idx on api_key (key_fingerprint);

-- Sign-in attempts are reserved before the password is hashed (so parallel guesses cannot
-- overrun the allowance); the id lets an attempt that succeeded, or was throttled, take its
-- reservation back.
alter table sign_in_failure add column attempt_id text;
create index sign_in_failure_attempt_idx on sign_in_failure (attempt_id);

-- The server secret lives in a file beside the data (or KEYWARD_SECRET), no longer in the
-- database; boot moves a stored one out once. What stays is a check value (an HMAC under the
-- secret of a fixed string), so an instance started with a different secret refuses to start
-- instead of silently failing every key.
create table instance_secret_check (
    name       text primary key,
    check_hmac text not null,
    created_at bigint not null
);
