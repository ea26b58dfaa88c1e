-- Open sign-up confirms the address by an emailed link before the account can sign in.
-- Accounts made any other way (the CLI, an administrator, an accepted invitation) and every
-- account that exists already count as confirmed.
alter table app_user add column email_verified_at bigint;
update app_user set email_verified_at = created_at;
