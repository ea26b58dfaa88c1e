-- Two-factor authentication: a confirmed TOTP factor per user, and their recovery codes.
--
-- `salt` is not the TOTP seed: the seed is HMAC(server secret, user ‖ salt), so a copy of the
-- database alone cannot produce codes. `last_step` is the last 30-second step a code was
-- accepted for: a code is accepted once, and never one older than the last accepted.
create table totp_factor (
    user_id      text primary key references app_user (user_id) on delete cascade,
    salt         text not null,
    last_step    bigint not null default 0,
    confirmed_at bigint not null
);

-- Recovery codes, single use, stored as HMAC(server secret, user ‖ code).
create table recovery_code (
    user_id    text not null references app_user (user_id) on delete cascade,
    code_hash  text not null,
    created_at bigint not null,
    primary key (user_id, code_hash)
);
