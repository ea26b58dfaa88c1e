-- Notifications: an outbox of email (delivered by a supervised worker over SMTP, retried with
-- backoff, its status visible to admins) and in-app notifications (the bell). Identical DDL on
-- both backends; never edit after shipping.

create table outbox_email (
    outbox_email_id text primary key,
    to_address      text not null,
    subject         text not null,
    body_text       text not null,
    status          text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    attempts        bigint not null default 0,
    -- When the worker may try next; a worker that takes a message moves it forward first, so
    -- two instances never send the same message at once.
    next_attempt_at bigint not null,
    last_error      text,
    -- One message per event and recipient (a usage threshold in a window, an expiry reminder).
    dedupe_key      text unique,
    created_at      bigint not null,
    sent_at         bigint
);
create index outbox_email_due_idx on outbox_email (status, next_attempt_at);

create table notification (
    notification_id text primary key,
    user_id         text not null references app_user (user_id) on delete cascade,
    kind            text not null,
    title           text not null,
    body            text not null,
    link            text,
    dedupe_key      text unique,
    created_at      bigint not null,
    read_at         bigint
);
create index notification_user_idx on notification (user_id, created_at);
