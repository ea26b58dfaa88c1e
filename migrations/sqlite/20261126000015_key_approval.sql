-- Approval of new keys (the Access domain). An organization may require that keys created by
-- someone without `approvals:write` wait for an approver: until then they do not verify.
alter table organization_policy add column require_key_approval bigint not null default 0;

-- `approved` for every key that never needed approval; `pending` until reviewed; `rejected`
-- keys are revoked in the same statement. Kept apart from `status` so that enable, disable and
-- revoke keep their meaning and a pending key can never become usable by any of them.
alter table api_key add column approval text not null default 'approved'
    check (approval in ('pending', 'approved', 'rejected'));
alter table api_key add column reviewed_by text;
alter table api_key add column reviewed_at bigint;

-- The timeline learns two kinds: SQLite cannot alter a check, so the table is rebuilt (the
-- same statements on both backends).
create table api_key_event_new (
    api_key_event_id text primary key,
    api_key_id       text not null references api_key (api_key_id) on delete cascade,
    organization_id  text not null references organization (organization_id) on delete cascade,
    kind             text not null check (kind in ('created', 'imported', 'edited', 'disabled', 'enabled', 'rolled', 'revoked', 'expired', 'approved', 'rejected')),
    actor            text,
    reason           text,
    source_ip        text,
    detail           text not null default '{}',
    occurred_at      bigint not null
);
insert into api_key_event_new select api_key_event_id, api_key_id, organization_id, kind, actor, reason, source_ip, detail, occurred_at from api_key_event;
drop table api_key_event;
alter table api_key_event_new rename to api_key_event;
create index api_key_event_key_idx on api_key_event (api_key_id, occurred_at);
