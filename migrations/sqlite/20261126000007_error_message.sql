-- The message a failed request was answered with (the `message` of its JSON error; opaque for
-- internal errors, as the client saw it), for the errors page. At most 200 characters.
alter table request_log add column error_message text;
