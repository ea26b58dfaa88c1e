-- A sign-in waiting for its second step (password accepted, code or passkey not yet) is a
-- session row too. Its `user_id` now names the user it waits for, so that whatever ends a
-- user's sessions (a password change or reset, "sign out everywhere else", an administrator
-- ending them, the account disabled) ends the half-finished sign-in as well; `pending` keeps
-- it out of the session lists and counts, since it is not signed in.
alter table session add column pending integer not null default 0;
