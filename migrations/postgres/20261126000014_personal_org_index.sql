-- Key verification asks whether a personal organization's user is still active (a disabled
-- or deleted user's personal keys stop): look the user up by their personal organization.
create index app_user_personal_org_idx on app_user (personal_organization_id);
