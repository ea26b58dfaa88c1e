-- Who answers for an invitation: the person who sent it, or the person behind the key that
-- sent it (a key's owner, else its maker, followed through keys that made keys). The hourly
-- bound per sender counts over them, so the keys one person makes in the organizations they
-- own cannot multiply what that person may mail. Earlier rows answer for their sender.
alter table invitation add column accountable_id text;
update invitation set accountable_id = sent_by;
create index invitation_accountable_created_idx on invitation (accountable_id, created_at);
