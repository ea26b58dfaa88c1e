-- Usage: rate-limit plans, the shared rate-limit count, the request log and its per-minute
-- rollup. Identical DDL on both backends (a test keeps the two sets in step); never edit after
-- shipping.

-- Named limits, instance-wide: at most `request_limit` requests in any rolling window of
-- `window_seconds`. `plan_free` is the default of every key without a plan; it can be edited,
-- not deleted.
create table plan (
    plan_id        text primary key,
    name           text not null unique,
    description    text not null default '',
    request_limit  bigint not null check (request_limit between 1 and 1000000000),
    window_seconds bigint not null check (window_seconds between 1 and 86400),
    created_at     bigint not null,
    updated_at     bigint not null
);
insert into plan (plan_id, name, description, request_limit, window_seconds, created_at, updated_at)
values ('plan_free', 'free', 'The default: 100 requests per hour.', 100, 3600, 0, 0);
insert into plan (plan_id, name, description, request_limit, window_seconds, created_at, updated_at)
values ('plan_pro', 'pro', '10 000 requests per hour.', 10000, 3600, 0, 0);

-- A key's plan (null: plan_free) and its own override (both set or both null).
alter table api_key add column plan_id text references plan (plan_id);
alter table api_key add column rate_limit bigint;
alter table api_key add column rate_window_seconds bigint;
create index api_key_plan_idx on api_key (plan_id);

-- The authoritative rate-limit count: admissions (and tokens leased by instances) per key and
-- bucket (1/60 of the key's window). See docs/rate-limits.md.
create table rate_bucket (
    api_key_id   text not null,
    bucket_start bigint not null,
    bucket_end   bigint not null,
    admitted     bigint not null,
    primary key (api_key_id, bucket_start)
);
create index rate_bucket_end_idx on rate_bucket (bucket_end);

-- Every /api/v1 request, written in batches off the request path. Kept for
-- KEYWARD_LOG_RETENTION_DAYS (default 30). No primary key: rows arrive in time order and are
-- only ever read by time range, so every index below grows at its end; a random request id as
-- a key would scatter each batch over the whole index (it made the writer 5x slower).
create table request_log (
    request_id      text not null,
    occurred_at     bigint not null,
    organization_id text,
    api_key_id      text,
    method          text not null,
    route           text not null,
    status          bigint not null,
    error_code      text,
    latency_us      bigint not null,
    client_ip       text,
    user_agent      text
);
create index request_log_time_idx on request_log (occurred_at);
create index request_log_org_time_idx on request_log (organization_id, occurred_at);
create index request_log_key_time_idx on request_log (api_key_id, occurred_at);

-- Requests per minute, organization, key, route and status class, written in the same
-- transaction as the raw rows: charts read this, never the raw log. Kept as long as the raw
-- rows.
create table usage_minute (
    minute          bigint not null,
    organization_id text not null,
    api_key_id      text not null,
    route           text not null,
    status_class    text not null,
    requests        bigint not null,
    latency_us_sum  bigint not null,
    primary key (minute, organization_id, api_key_id, route, status_class)
);
create index usage_minute_org_idx on usage_minute (organization_id, minute);
