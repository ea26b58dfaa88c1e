-- Passkeys and security keys (WebAuthn).
--
-- `webauthn_handle` is the user handle authenticators store with a discoverable credential
-- (a random UUID, never the user id or email): a passkey sign-in names the user by it.
create table webauthn_handle (
    user_id text primary key references app_user (user_id) on delete cascade,
    handle  text not null unique
);

-- A registered credential: its public key and signature counter (webauthn-rs `Passkey`, as
-- JSON; nothing secret), and the name its owner gave it.
create table passkey (
    passkey_id    text primary key,
    user_id       text not null references app_user (user_id) on delete cascade,
    name          text not null,
    credential_id text not null unique,
    credential    text not null,
    created_at    bigint not null,
    last_used_at  bigint
);
create index passkey_by_user on passkey (user_id);

-- A ceremony in progress (registration, second factor, passwordless sign-in): the challenge
-- and its options, kept on the server. Only the console session that started it knows its id;
-- finishing deletes the row (one statement), so it is used at most once, on any instance.
create table webauthn_ceremony (
    ceremony_id text primary key,
    purpose     text not null,
    user_id     text,
    state       text not null,
    expires_at  bigint not null
);
create index webauthn_ceremony_by_expiry on webauthn_ceremony (expires_at);
