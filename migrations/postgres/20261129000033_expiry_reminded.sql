-- The expiry reminder a key was last sent: for which expiry (`expires_at` at the time) and how
-- many days before it. The hourly scan reads only keys whose due reminder is not sent yet and
-- claims each with one conditional update, so a key already reminded costs no write and two
-- instances never both tell the same reminder. Extending a key's expiry starts over.
-- Keys reminded before this migration have nulls: the next scan claims them once more and the
-- notifications' dedupe keys keep their owners from being told twice.
alter table api_key add column reminded_expiry bigint;
alter table api_key add column reminded_days bigint;
create index api_key_expiring_idx on api_key (expires_at) where expires_at is not null;
