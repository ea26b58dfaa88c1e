-- Email-change confirmations are bounded per receiving address per hour, counted in the
-- request that queues one: this index keeps that count a small read however long the outbox
-- grows.
create index outbox_email_to_created_idx on outbox_email (to_address, created_at);
