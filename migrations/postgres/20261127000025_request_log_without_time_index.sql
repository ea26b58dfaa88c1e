-- The request log loses its index on time alone: every request wrote it, and nothing needs it.
-- Every reader filters by organization and time (`request_log_org_time_idx`), and retention
-- walks the organizations through that same index (`usage::log::enforce_retention`). One
-- B-tree fewer to write per request on the API's hot path.
drop index request_log_time_idx;
