-- A key's dynamic permissions: names from its organization's own catalog (`custom_permission`),
-- such as `invoices:read`, that other services check through `POST /api/v1/keys/verify`.
-- Built-in permissions stay in `scopes`. A JSON array of names.
alter table api_key add column permissions text not null default '[]';
