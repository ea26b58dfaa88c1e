//! Run-time settings the app needs (the server crate parses flags and `KEYWARD_*` variables
//! into this).

use std::time::Duration;

#[derive(Clone)]
pub struct Config {
    /// The origin users reach Keyward at, e.g. `http://127.0.0.1:3000`. Decides cookie
    /// security and is one of the origins accepted by the CSRF check.
    pub public_origin: url::Url,
    /// Whether anyone may create an account (off by default for a self-hosted install).
    pub signup_open: bool,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, whatever the activity.
    pub session_absolute: Duration,
    /// Failed sign-ins allowed per account (and per trusted device) in a sliding hour.
    pub sign_in_failures_per_hour: i64,
    /// Invitation emails the instance may send in a sliding hour, over every organization
    /// and sender (`KEYWARD_INVITATIONS_PER_HOUR`).
    pub invitations_per_hour: i64,
    /// Sign-in and sign-up attempts allowed per client address (IPv6: per /64) per minute.
    pub auth_attempts_per_ip_per_minute: u32,
    /// Host names (with port) requests may be addressed to: the public origin's and the listen
    /// address's. Anything else is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Days the raw request log is kept (and its per-minute rollup).
    pub log_retention_days: u32,
    /// Who may read `GET /metrics`: these client networks, or a bearer token.
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`KEYWARD_TRUSTED_PROXIES`; empty:
    /// the socket peer is the client). See [`super::client`].
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `Authorization: Bearer <token>` for `/metrics` from elsewhere. Never logged.
    pub metrics_token: Option<String>,
    /// Where email goes (lettre's URL form, see `notify::mail`); `None`: not configured.
    /// Never logged: it may hold a password.
    pub smtp_url: Option<String>,
    /// The sender of Keyward's email.
    pub mail_from: String,
    /// Server-side key for HMACs (device cookies). Never logged.
    pub secret: [u8; 32],
    /// WebAuthn relying party: the host name passkeys are bound to (never an IP address), and
    /// the origin the browser must be at. See [`Config::webauthn_defaults`].
    pub webauthn_rp_id: String,
    pub webauthn_origin: url::Url,
    /// Where the server secret is kept (`None`: given as `KEYWARD_SECRET`); the security scan
    /// checks who can read it.
    pub secret_file: Option<std::path::PathBuf>,
}

impl Config {
    /// Cookies get `Secure` and the `__Host-` prefix when served over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_origin.scheme() == "https"
    }

    pub fn session_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            "__Host-keyward_session"
        } else {
            "keyward_session"
        }
    }

    pub fn device_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            "__Host-keyward_device"
        } else {
            "keyward_device"
        }
    }

    /// The `Host` values a request may carry: the public origin's authority, the listen
    /// address, and `localhost` when listening on loopback.
    pub fn hosts_for(public_origin: &url::Url, listen: std::net::SocketAddr) -> Vec<String> {
        let mut hosts = Vec::new();
        if let Some(host) = public_origin.host_str() {
            hosts.push(match public_origin.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            });
        }
        if !listen.ip().is_unspecified() {
            hosts.push(listen.to_string());
        }
        if listen.ip().is_loopback() {
            hosts.push(format!("localhost:{}", listen.port()));
        }
        hosts.dedup();
        hosts
    }

    /// The relying party a public origin implies: its host name, or `localhost` (same port)
    /// when it is an IP address (browsers refuse an IP address as a relying party id, so on
    /// the default `http://127.0.0.1:3000` passkeys work at `http://localhost:3000`).
    pub fn webauthn_defaults(public_origin: &url::Url) -> (String, url::Url) {
        match public_origin.host() {
            Some(url::Host::Domain(host)) => (host.to_string(), public_origin.clone()),
            _ => {
                let mut origin = public_origin.clone();
                let _ = origin.set_host(Some("localhost"));
                ("localhost".to_string(), origin)
            }
        }
    }

    /// The WebAuthn verifier for the configured relying party.
    pub fn webauthn(&self) -> Result<webauthn_rs::Webauthn, crate::error::AppError> {
        webauthn_rs::WebauthnBuilder::new(&self.webauthn_rp_id, &self.webauthn_origin)
            .and_then(|b| b.rp_name("Keyward").build())
            .map_err(|e| crate::error::AppError::internal(format!("WebAuthn configuration: {e}")))
    }

    /// The public origin as links in mail and pages start (`https://example.com/keyward`,
    /// no trailing slash): append `/path` to it.
    pub fn link_base(&self) -> &str {
        self.public_origin.as_str().trim_end_matches('/')
    }

    /// `scheme://host[:port]` of the public origin, as browsers send it in `Origin`.
    pub fn origin_string(&self) -> String {
        self.public_origin.origin().ascii_serialization()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("public_origin", &self.public_origin.as_str())
            .field("webauthn_rp_id", &self.webauthn_rp_id)
            .field("webauthn_origin", &self.webauthn_origin.as_str())
            .field("signup_open", &self.signup_open)
            .field("session_idle", &self.session_idle)
            .field("session_absolute", &self.session_absolute)
            .field("sign_in_failures_per_hour", &self.sign_in_failures_per_hour)
            .field("invitations_per_hour", &self.invitations_per_hour)
            .field(
                "auth_attempts_per_ip_per_minute",
                &self.auth_attempts_per_ip_per_minute,
            )
            .field("allowed_hosts", &self.allowed_hosts)
            .field("log_retention_days", &self.log_retention_days)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("mail_from", &self.mail_from)
            .field("metrics_allow", &self.metrics_allow)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("secret", &"<redacted>")
            .finish()
    }
}
