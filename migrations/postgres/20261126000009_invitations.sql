-- Invitations into an organization (the Access domain).
--
-- The link an invitee receives is signed (an HMAC of the invitation's id and address
-- under the instance secret), so nothing here can be replayed as a link; it is single use
-- (`accepted_at`, set by one conditional update) and expires (`expires_at`). Inviting the same
-- address again revokes the pending invitation and sends a new link.
create table invitation (
    invitation_id   text primary key,
    organization_id text not null references organization (organization_id) on delete cascade,
    -- Lower-cased, as accounts store it.
    email           text not null,
    -- The built-in role the invitee joins with (never owner: ownership is transferred).
    role            text not null check (role in ('admin', 'member', 'viewer')),
    invited_by      text references app_user (user_id) on delete set null,
    created_at      bigint not null,
    expires_at      bigint not null,
    accepted_at     bigint,
    accepted_by     text references app_user (user_id) on delete set null,
    revoked_at      bigint
);
-- At most one pending invitation per address and organization.
create unique index invitation_pending_idx on invitation (organization_id, email)
    where accepted_at is null and revoked_at is null;
