-- The request log loses its index on (key, time) too: every request wrote it, and no reader
-- needs it. The reports filter by organization and time first (`request_log_org_time_idx`; a
-- key filter is checked on those rows), and the scope-usage report of one key names the key's
-- organization (`security::ssr::used_scopes`). One B-tree left to write per request besides
-- the table itself.
drop index request_log_key_time_idx;
