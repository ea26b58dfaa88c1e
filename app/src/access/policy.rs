//! The declared guard of every server function, in one table.
//!
//! Each `#[server]` function names its endpoint and starts with `crate::access::guard::guard(ENDPOINT)`, which
//! enforces the row below; the `/rpc` middleware enforces the same row before the function
//! runs, so an undeclared endpoint is refused twice over. A test enumerates the registered
//! server functions and fails if one has no row here.

use super::Permission;

/// The URL prefix of every server function.
pub const RPC_PREFIX: &str = "/rpc";

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Anyone, signed in or not (sign-in, sign-up, "who am I").
    Public,
    /// Any signed-in user; the function only touches the caller's own data. Refused while
    /// the session must first enrol a second factor an organization requires.
    SignedIn,
    /// Like `SignedIn`, and also while the session must first enrol a second factor: the
    /// enrolment functions and sign-out only.
    Enrolling,
    /// A signed-in user holding the permission in the organization the call names; the
    /// function starts with `crate::access::guard::guard_in(endpoint, organization_id)`, which checks it
    /// through the authorization core and returns the grant.
    Org(Permission),
    /// A signed-in user holding the permission in the system organization (instance admin).
    Instance(Permission),
}

/// Whether an administrator impersonating a user may call `endpoint` in the user's name.
/// Deny by default: impersonation is for seeing what the user sees. Allowed are the endpoints
/// whose permission only reads, navigating the console, disabling, enabling or revoking a key
/// (incident response), and ending the impersonation. Everything else is refused: the user's
/// password, email, second factor, sessions, account and preferences; roles, members (leaving an
/// organization included),
/// invitations, teams, policies and approvals (which could outlast the time limit); creating,
/// rolling, importing or editing keys; signing in or up again. Enforced by
/// [`crate::access::guard::guard`] for every call, and by the console's plain routes.
pub fn allowed_while_impersonating(endpoint: &str) -> bool {
    const CONSOLE: &[&str] = &[
        "current_user",
        "api_document",
        "sign_out",
        "stop_impersonation",
        "my_organizations",
        "my_dashboard",
        "my_notifications",
        "unread_notifications",
        "list_plans",
        "two_factor_status",
        "my_passkeys",
        "set_key_status",
        // The console's plain routes: the live usage feed and the usage and audit exports
        // (usage:read, audit:read).
        "usage_events",
        "usage_export",
        "audit_export",
    ];
    // Guarded by a read permission, yet they change what outlasts the impersonation.
    const WRITES: &[&str] = &["leave_organization"];
    if CONSOLE.contains(&endpoint) {
        return true;
    }
    !WRITES.contains(&endpoint)
        && matches!(guard_for(endpoint), Some(Guard::Org(p) | Guard::Instance(p)) if !p.is_write())
}

/// Endpoint name (the part after `/rpc/`) → guard.
pub const SERVER_FNS: &[(&str, Guard)] = &[
    ("sign_in", Guard::Public),
    ("sign_up", Guard::Public),
    ("confirm_sign_up", Guard::Public),
    ("current_user", Guard::Public),
    ("api_document", Guard::Public),
    ("sign_out", Guard::Enrolling),
    ("verify_second_factor", Guard::Public),
    ("two_factor_status", Guard::Enrolling),
    ("start_totp", Guard::Enrolling),
    ("confirm_totp", Guard::Enrolling),
    ("disable_totp", Guard::SignedIn),
    ("regenerate_recovery_codes", Guard::SignedIn),
    ("my_passkeys", Guard::Enrolling),
    ("start_passkey_registration", Guard::Enrolling),
    ("finish_passkey_registration", Guard::Enrolling),
    ("remove_passkey", Guard::SignedIn),
    ("second_factor_options", Guard::Public),
    ("start_passkey_second_factor", Guard::Public),
    ("verify_passkey_second_factor", Guard::Public),
    ("start_passkey_sign_in", Guard::Public),
    ("finish_passkey_sign_in", Guard::Public),
    ("security_scan", Guard::Org(Permission::AuditRead)),
    ("narrow_key_scopes", Guard::Org(Permission::KeysWrite)),
    ("my_sessions", Guard::SignedIn),
    ("revoke_session", Guard::SignedIn),
    ("revoke_other_sessions", Guard::SignedIn),
    ("my_organizations", Guard::SignedIn),
    ("organization_members", Guard::Org(Permission::MembersRead)),
    ("list_users", Guard::Instance(Permission::UsersRead)),
    ("create_user", Guard::Instance(Permission::UsersWrite)),
    ("set_user_status", Guard::Instance(Permission::UsersWrite)),
    (
        "send_password_reset",
        Guard::Instance(Permission::UsersWrite),
    ),
    ("delete_user", Guard::Instance(Permission::UsersWrite)),
    ("end_user_sessions", Guard::Instance(Permission::UsersWrite)),
    ("user_sessions", Guard::Instance(Permission::UsersRead)),
    ("end_user_session", Guard::Instance(Permission::UsersWrite)),
    (
        "reset_user_two_factor",
        Guard::Instance(Permission::UsersWrite),
    ),
    (
        "impersonate_user",
        Guard::Instance(Permission::ImpersonationWrite),
    ),
    ("stop_impersonation", Guard::SignedIn),
    ("open_password_link", Guard::Public),
    ("set_password_from_link", Guard::Public),
    ("list_keys", Guard::Org(Permission::KeysRead)),
    ("get_key", Guard::Org(Permission::KeysRead)),
    ("export_keys", Guard::Org(Permission::KeysRead)),
    ("update_key", Guard::Org(Permission::KeysWrite)),
    ("import_keys", Guard::Org(Permission::KeysWrite)),
    ("key_history", Guard::Org(Permission::KeysRead)),
    ("create_key", Guard::Org(Permission::KeysWrite)),
    ("set_key_status", Guard::Org(Permission::KeysWrite)),
    ("roll_key", Guard::Org(Permission::KeysWrite)),
    ("review_key", Guard::Org(Permission::ApprovalsWrite)),
    ("list_teams", Guard::Org(Permission::MembersRead)),
    ("audit_log", Guard::Org(Permission::AuditRead)),
    ("create_team", Guard::Org(Permission::MembersWrite)),
    ("delete_team", Guard::Org(Permission::MembersWrite)),
    ("set_team_member", Guard::Org(Permission::MembersWrite)),
    ("set_team_role", Guard::Org(Permission::RolesWrite)),
    ("bulk_keys", Guard::Org(Permission::KeysWrite)),
    ("set_key_limit", Guard::Org(Permission::KeysWrite)),
    ("list_plans", Guard::SignedIn),
    ("my_notifications", Guard::SignedIn),
    ("unread_notifications", Guard::SignedIn),
    ("mark_notifications_read", Guard::SignedIn),
    ("list_outbox", Guard::Instance(Permission::UsersRead)),
    ("usage_series", Guard::Org(Permission::UsageRead)),
    ("usage_overview", Guard::Org(Permission::UsageRead)),
    ("usage_errors", Guard::Org(Permission::UsageRead)),
    ("key_usage", Guard::Org(Permission::UsageRead)),
    (
        "usage_by_organization",
        Guard::Instance(Permission::UsersRead),
    ),
    ("create_plan", Guard::Instance(Permission::PlansWrite)),
    ("update_plan", Guard::Instance(Permission::PlansWrite)),
    ("delete_plan", Guard::Instance(Permission::PlansWrite)),
    ("list_roles", Guard::Org(Permission::RolesRead)),
    ("create_role", Guard::Org(Permission::RolesWrite)),
    ("set_role_parents", Guard::Org(Permission::RolesWrite)),
    ("set_role_permission", Guard::Org(Permission::RolesWrite)),
    ("delete_role", Guard::Org(Permission::RolesWrite)),
    ("create_permission", Guard::Org(Permission::RolesWrite)),
    ("assign_role", Guard::Org(Permission::RolesWrite)),
    ("create_group", Guard::Org(Permission::RolesWrite)),
    ("set_group_permission", Guard::Org(Permission::RolesWrite)),
    ("set_role_group", Guard::Org(Permission::RolesWrite)),
    ("delete_group", Guard::Org(Permission::RolesWrite)),
    ("create_organization", Guard::SignedIn),
    ("switch_organization", Guard::Org(Permission::OrgRead)),
    ("invite_member", Guard::Org(Permission::MembersWrite)),
    ("list_invitations", Guard::Org(Permission::MembersWrite)),
    ("revoke_invitation", Guard::Org(Permission::MembersWrite)),
    ("remove_member", Guard::Org(Permission::MembersWrite)),
    ("set_member_role", Guard::Org(Permission::MembersWrite)),
    ("leave_organization", Guard::Org(Permission::OrgRead)),
    ("transfer_ownership", Guard::Org(Permission::OrgWrite)),
    ("get_org_policy", Guard::Org(Permission::OrgRead)),
    ("set_org_policy", Guard::Org(Permission::OrgWrite)),
    // The link's signature is the credential; accepting signs in or creates the invited account.
    ("open_invitation", Guard::Public),
    ("accept_invitation", Guard::Public),
    ("update_profile", Guard::SignedIn),
    ("set_preferences", Guard::SignedIn),
    ("my_dashboard", Guard::SignedIn),
    ("my_activity", Guard::SignedIn),
    ("change_password", Guard::SignedIn),
    ("delete_account", Guard::SignedIn),
    ("request_email_change", Guard::SignedIn),
    // The link's signature is the credential.
    ("confirm_email_change", Guard::Public),
];

/// The guard declared for an endpoint name, if any.
pub fn guard_for(endpoint: &str) -> Option<Guard> {
    SERVER_FNS
        .iter()
        .find(|(name, _)| *name == endpoint)
        .map(|(_, g)| *g)
}

/// The guard declared for a request path under [`RPC_PREFIX`], if any.
pub fn guard_for_path(path: &str) -> Option<Guard> {
    path.strip_prefix(RPC_PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(guard_for)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deny by default: nothing that writes, signs in or touches the user's own affairs.
    #[test]
    fn impersonation_reads_and_refuses_the_rest() {
        for allowed in [
            "current_user",
            "list_keys",
            "audit_log",
            "list_users",
            "stop_impersonation",
            "set_key_status",
        ] {
            assert!(allowed_while_impersonating(allowed), "{allowed}");
        }
        for refused in [
            "change_password",
            "request_email_change",
            "confirm_email_change",
            "delete_account",
            "start_totp",
            "confirm_totp",
            "disable_totp",
            "regenerate_recovery_codes",
            "start_passkey_registration",
            "finish_passkey_registration",
            "remove_passkey",
            "start_passkey_sign_in",
            "finish_passkey_sign_in",
            "start_passkey_second_factor",
            "verify_passkey_second_factor",
            "my_sessions",
            "revoke_session",
            "revoke_other_sessions",
            "leave_organization",
            "impersonate_user",
            "create_key",
            "roll_key",
            "import_keys",
            "update_key",
            "invite_member",
            "accept_invitation",
            "set_member_role",
            "transfer_ownership",
            "set_org_policy",
            "review_key",
            "create_role",
            "assign_role",
            "sign_in",
            "verify_second_factor",
            "set_preferences",
            "update_profile",
            "create_user",
            "set_user_status",
            "end_user_sessions",
            "undeclared_endpoint",
        ] {
            assert!(!allowed_while_impersonating(refused), "{refused}");
        }
    }
}
