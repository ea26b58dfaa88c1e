-- A team member's organization is the team's: the composite foreign key makes a row that puts
-- a member of one organization into another organization's team impossible, whatever the
-- code does. The table is rebuilt (SQLite cannot add a constraint; the same statements run on
-- both backends).
create unique index team_org_idx on team (team_id, organization_id);

create table team_member_new (
    team_id         text not null,
    organization_id text not null,
    user_id         text not null,
    created_at      bigint not null,
    primary key (team_id, user_id),
    foreign key (team_id, organization_id) references team (team_id, organization_id) on delete cascade,
    foreign key (organization_id, user_id) references membership (organization_id, user_id) on delete cascade
);
insert into team_member_new select team_id, organization_id, user_id, created_at from team_member;
drop table team_member;
alter table team_member_new rename to team_member;
create index team_member_user_idx on team_member (organization_id, user_id);
