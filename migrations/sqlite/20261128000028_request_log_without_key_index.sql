-- The request log loses its index on (key, time) too: every request wrote it, for little. The
-- reports filter by organization and time first (`request_log_org_time_idx`) and check a key
-- filter on those rows (SQLite never used this index for them; PostgreSQL's per-call plans
-- could, so one key's report now reads its organization's rows in the range), and the
-- scope-usage report of one key names the key's organization (`security::ssr::used_scopes`).
-- One B-tree left to write per request besides the table itself.
drop index request_log_key_time_idx;
