//! Identity: users, sign-up, sign-in, sign-out, and who the current user is.

pub mod api;
#[cfg(feature = "ssr")]
pub mod dashboard;
pub mod pages;
pub mod passkey_api;
pub mod passkey_pages;
#[cfg(feature = "ssr")]
pub mod passkeys;
#[cfg(feature = "ssr")]
pub mod password_link;
#[cfg(feature = "ssr")]
pub mod profile;
#[cfg(feature = "ssr")]
pub mod sessions;
#[cfg(feature = "ssr")]
pub mod ssr;
#[cfg(feature = "ssr")]
pub mod two_factor;
pub mod two_factor_pages;

use serde::{Deserialize, Serialize};

/// The signed-in user, as the console sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInUser {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// Permissions held in the system organization (`users:read`…): decides the admin menus.
    pub instance_permissions: Vec<String>,
    /// The organizations the user belongs to, for the switcher (the active one first).
    pub organizations: Vec<OrgChoice>,
    /// Effective permissions in the active organization: decide the organization menus.
    pub active_permissions: Vec<String>,
    /// The time zone every date and chart is shown in (an IANA name); `None`: the browser's.
    pub time_zone: Option<String>,
    pub theme: Theme,
    /// This session may only enrol a second factor (an organization requires one) until it
    /// has one.
    #[serde(default)]
    pub must_enrol_two_factor: bool,
    /// An administrator is acting as this user in this session.
    #[serde(default)]
    pub impersonation: Option<Impersonation>,
}

/// Who is acting as the user, until when: the banner on every page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impersonation {
    /// The administrator's address.
    pub by: String,
    pub until: String,
}

/// The console's colours: the operating system's choice, or always light or dark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Light, Theme::Dark];

    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    pub fn parse(s: &str) -> Option<Theme> {
        Theme::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "Same as the system",
            Theme::Light => "Light",
            Theme::Dark => "Dark",
        }
    }
}

/// The name of the cookie that carries the theme, so that the server renders the page in it
/// before the app has loaded (not a secret: a colour scheme).
pub const THEME_COOKIE: &str = "keyward_theme";

/// One of the user's organizations, as the switcher lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgChoice {
    pub organization_id: String,
    pub name: String,
}

impl SignedInUser {
    /// Whether the user holds `permission` (a name) in the active organization.
    pub fn may(&self, permission: &str) -> bool {
        self.active_permissions.iter().any(|p| p == permission)
    }

    pub fn can(&self, permission: crate::access::Permission) -> bool {
        self.instance_permissions
            .iter()
            .any(|p| p == permission.as_str())
    }
}

/// The signed-in user's dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    /// Active keys they created or own, newest first.
    pub keys: Vec<DashboardKey>,
    /// Their latest actions.
    pub activity: Vec<DashboardEvent>,
    pub unread_notifications: i64,
}

/// One of the user's keys, with its usage in its current window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardKey {
    pub id: String,
    pub organization_id: String,
    pub organization_name: String,
    pub name: String,
    pub display_prefix: String,
    /// A personal access token.
    pub personal: bool,
    /// Requests in the last `window_seconds` (from the per-minute rollup).
    pub used: i64,
    pub limit: i64,
    pub window_seconds: i64,
    pub expires_at: Option<String>,
    /// Expires within 30 days.
    pub expires_soon: bool,
}

/// One of the user's recent actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardEvent {
    pub kind: String,
    pub at: String,
    pub organization_name: Option<String>,
}

/// One of the user's console sessions, as "My sessions" shows it. Named by an opaque handle:
/// never the session id or its stored hash.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub handle: String,
    /// "Chrome on Linux".
    pub device: String,
    pub ip: Option<String>,
    pub signed_in_at: String,
    pub last_seen_at: String,
    /// The session making this request.
    pub current: bool,
}

/// The caller's two-factor authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoFactorStatus {
    /// When the authenticator app was set up (RFC 3339), if it is.
    pub totp_enabled_at: Option<String>,
    pub recovery_codes_left: i64,
    /// The organizations whose policy requires a second factor.
    pub required_by: Vec<String>,
    /// This session may only enrol until it has one.
    pub must_enrol: bool,
}

/// One of the user's passkeys or security keys. Never holds the credential itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// What the second sign-in step can take for the sign-in waiting in this session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorChoices {
    /// A code from an authenticator app (or a recovery code).
    pub code: bool,
    pub passkey: bool,
}

/// A new authenticator-app factor, shown once while it is set up: the QR code (an SVG drawn
/// by our server) and the secret for typing in by hand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    pub secret: String,
    pub uri: String,
    /// The QR code of `uri`, as a `data:image/svg+xml` URL.
    pub qr_image: String,
}

/// One entry of the user's own activity log (Profile → Activity): what they did, and what was
/// done to their account by someone else (an administrator, an impersonation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub action: String,
    pub at: String,
    pub ip: Option<String>,
    /// Who acted, when not the user themselves (an address, a key id, `cli`); `None`: the user.
    pub by: Option<String>,
}
