-- Teams (the Access domain): groups of an organization's members that hold roles together.
-- A member holds their own roles and those of every team they are in; leaving the
-- organization takes them out of its teams (the membership foreign key cascades).
create table team (
    team_id         text primary key,
    organization_id text not null references organization (organization_id) on delete cascade,
    name            text not null,
    description     text not null default '',
    created_at      bigint not null
);
create unique index team_name_idx on team (organization_id, name);

create table team_member (
    team_id         text not null references team (team_id) on delete cascade,
    organization_id text not null,
    user_id         text not null,
    created_at      bigint not null,
    primary key (team_id, user_id),
    foreign key (organization_id, user_id) references membership (organization_id, user_id) on delete cascade
);
create index team_member_user_idx on team_member (organization_id, user_id);

-- Custom roles a team holds (built-in roles stay a membership's base role).
create table team_role (
    team_id    text not null references team (team_id) on delete cascade,
    role_id    text not null references role (role_id) on delete cascade,
    created_at bigint not null,
    primary key (team_id, role_id)
);
create index team_role_role_idx on team_role (role_id);
