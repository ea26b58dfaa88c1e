-- Roles and permissions as data (the Access domain).
--
-- The built-in permission catalog and what the built-in roles grant stay declared in code
-- (read-only, the same on every instance); the built-in roles are seeded here as rows so that
-- custom roles can inherit them and assignments can name them. Everything else is data an
-- organization's admins manage: custom roles with parents (to any depth, never a cycle),
-- dynamic permissions for their own services, permission groups, and dependencies between
-- permissions.

-- A role. Built-in roles have no organization (every organization has them) and `builtin = 1`.
create table role (
    role_id         text primary key,
    organization_id text references organization (organization_id) on delete cascade,
    name            text not null,
    description     text not null default '',
    builtin         bigint not null default 0,
    created_at      bigint not null
);
create unique index role_name_idx on role (coalesce(organization_id, ''), name);

insert into role (role_id, organization_id, name, description, builtin, created_at) values
    ('owner', null, 'owner', 'Everything in the organization, including deleting it and transferring ownership.', 1, 0),
    ('admin', null, 'admin', 'Manages members, roles and keys; reads audit and usage.', 1, 0),
    ('member', null, 'member', 'Creates and manages keys; reads the organization, its members and usage.', 1, 0),
    ('viewer', null, 'viewer', 'Reads keys, members and usage; changes nothing.', 1, 0);

-- A role inherits every permission of each of its parents.
create table role_parent (
    role_id   text not null references role (role_id) on delete cascade,
    parent_id text not null references role (role_id) on delete cascade,
    primary key (role_id, parent_id)
);
create index role_parent_parent_idx on role_parent (parent_id);

-- Permissions a custom role grants directly (built-in roles' grants are in code).
create table role_permission (
    role_id    text not null references role (role_id) on delete cascade,
    permission text not null,
    primary key (role_id, permission)
);

-- Dynamic permissions an organization defines for its own services (`invoices:read`).
create table custom_permission (
    organization_id text not null references organization (organization_id) on delete cascade,
    name            text not null,
    description     text not null default '',
    created_at      bigint not null,
    primary key (organization_id, name)
);

-- `permission` requires `requires`: granting the first grants the second. Built-in
-- dependencies (`keys:write` requires `keys:read`) are in code.
create table permission_dependency (
    organization_id text not null references organization (organization_id) on delete cascade,
    permission      text not null,
    requires        text not null,
    primary key (organization_id, permission, requires)
);

-- A named set of permissions, granted to roles as a unit.
create table permission_group (
    group_id        text primary key,
    organization_id text not null references organization (organization_id) on delete cascade,
    name            text not null,
    description     text not null default '',
    created_at      bigint not null
);
create unique index permission_group_name_idx on permission_group (organization_id, name);

create table permission_group_item (
    group_id   text not null references permission_group (group_id) on delete cascade,
    permission text not null,
    primary key (group_id, permission)
);

create table role_group (
    role_id  text not null references role (role_id) on delete cascade,
    group_id text not null references permission_group (group_id) on delete cascade,
    primary key (role_id, group_id)
);

-- Roles a member holds in an organization beside their membership's base role.
create table role_assignment (
    organization_id text not null,
    user_id         text not null,
    role_id         text not null references role (role_id) on delete cascade,
    created_at      bigint not null,
    primary key (organization_id, user_id, role_id),
    foreign key (organization_id, user_id) references membership (organization_id, user_id) on delete cascade
);
create index role_assignment_role_idx on role_assignment (role_id);
