-- The hourly bounds on invitations count rows sent in the last hour by a sender and by the
-- whole instance, in the statement that inserts one: indexes keep those counts small reads
-- however long the table grows.
create index invitation_sent_by_created_idx on invitation (sent_by, created_at);
create index invitation_created_idx on invitation (created_at);
