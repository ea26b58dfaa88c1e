-- Each user's display preferences: the time zone every date and chart is shown in (an IANA
-- name; null: the browser's own) and the console theme (system, light or dark).
alter table app_user add column time_zone text;
alter table app_user add column theme text not null default 'system';
-- When the last address-confirmation link went out: an unconfirmed sign-up is deleted a day
-- after it (the link's life), whatever else touched the row.
alter table app_user add column verify_sent_at bigint;
