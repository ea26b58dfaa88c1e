-- A user's recent activity (the dashboard, later the activity log) reads their own events.
create index domain_event_actor_idx on domain_event (actor_user_id, occurred_at);
