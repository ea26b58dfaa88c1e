-- The passkey's signature counter as a column, so that one conditional update accepts a use
-- only when the counter moved forward (a cloned authenticator, or two sign-ins racing to write
-- an older value back, are refused).
alter table passkey add column sign_count bigint not null default 0;
