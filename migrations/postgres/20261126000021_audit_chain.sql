-- The audit chain: every domain event gets a place (`seq`) in one hash chain, assigned by the
-- `audit-chain` worker in commit order, so that an edited or deleted entry is detected
-- (`keyward audit verify`). The table is rebuilt (the same statements on both backends):
-- an organization's deletion (an unconfirmed sign-up's personal organization is purged) no
-- longer deletes its events; the audit log keeps them, pointing at the id it had.
create table domain_event_new (
    event_id        text primary key,
    organization_id text,
    actor_user_id   text,
    kind            text not null,
    subject_id      text,
    source_ip       text,
    data            text not null default '{}',
    occurred_at     bigint not null,
    seq             bigint,
    prev_hash       text,
    entry_hash      text
);
insert into domain_event_new (event_id, organization_id, actor_user_id, kind, subject_id, source_ip, data, occurred_at)
    select event_id, organization_id, actor_user_id, kind, subject_id, source_ip, data, occurred_at from domain_event;
drop table domain_event;
alter table domain_event_new rename to domain_event;
create index domain_event_org_idx on domain_event (organization_id, occurred_at);
create index domain_event_actor_idx on domain_event (actor_user_id, occurred_at);
create unique index domain_event_seq_idx on domain_event (seq);
create index domain_event_unchained_idx on domain_event (occurred_at, event_id) where seq is null;
