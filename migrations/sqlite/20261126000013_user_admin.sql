-- Instance user administration: a deleted account keeps its row (so that audit entries, keys'
-- creators and invitations still name someone), anonymized and disabled, with the time of
-- deletion. Its email address is free again.
alter table app_user add column deleted_at bigint;
