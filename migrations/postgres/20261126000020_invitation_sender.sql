-- Who sent an invitation, user or key (`invited_by` names only a user, for display): an
-- invitation is accepted only while its sender could still give its role.
alter table invitation add column sent_by text;
update invitation set sent_by = invited_by where sent_by is null;
