-- What ends all of a user's sessions (sign out everywhere else, a factor added or removed, an
-- administrator ending them, the account disabled, a password set or changed) also moves the
-- user's session epoch on, in the same transaction. Every session holds a credential stamp
-- made of the password hash and this epoch, checked on every request: a sign-in that was
-- checking the password at that moment, and writes its session row after the rows were
-- deleted, holds the old epoch and is over at its first request.
alter table app_user add column session_epoch bigint not null default 0;
