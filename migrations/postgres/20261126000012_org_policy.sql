-- An organization's policies (the Access domain). One row per organization that set any.
create table organization_policy (
    organization_id       text primary key references organization (organization_id) on delete cascade,
    -- New keys must expire within this many days (null: no limit). GitHub allows 366.
    max_key_lifetime_days bigint,
    -- Members must use two-factor authentication (stored now; enforced at sign-in once
    -- two-factor authentication exists).
    require_two_factor    bigint not null default 0,
    updated_at            bigint not null
);
