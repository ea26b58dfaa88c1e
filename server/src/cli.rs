//! Command line: `keyward serve | migrate | create-admin | create-key | audit verify`. Every flag has a `KEYWARD_*`
//! environment variable; the README lists them with their defaults.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "keyward",
    version,
    about = "Keyward: API keys and access management"
)]
pub struct Cli {
    /// Database URL: `sqlite://path/to/file.db` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_URL",
        default_value = "sqlite://data/keyward.db",
        global = true
    )]
    pub database_url: String,

    /// The file holding the server secret when `KEYWARD_SECRET` is not given; created (mode
    /// 0600) on first start. Default: `keyward.secret` beside the SQLite database, or in the
    /// working directory for PostgreSQL (several instances must share one secret).
    #[arg(long, env = "KEYWARD_SECRET_FILE", global = true)]
    pub secret_file: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once at start: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Apply migrations, bootstrap the first admin on an empty database, and serve HTTP.
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Create an instance administrator (non-interactive, for automation).
    CreateAdmin(CreateAdminArgs),
    /// Create an API key and print it alone on stdout (for automation).
    CreateKey(CreateKeyArgs),
    /// The audit log: `keyward audit verify` checks its hash chain.
    Audit(AuditArgs),
    /// Print the security report of the instance (the console's Security page): configuration
    /// risks, administrators without 2FA, risky keys, every endpoint and what it requires.
    /// Takes `serve`'s settings (the same flags and KEYWARD_* variables). Exits 2 when a
    /// finding is high.
    SecurityScan(SecurityScanArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SecurityScanArgs {
    /// The report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
    /// Server secret (must match the one `serve` uses).
    #[arg(long, env = "KEYWARD_SECRET", hide_env_values = true, global = true)]
    pub secret: Option<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum AuditAction {
    /// Chain what is not chained yet, then check every entry; names the first broken entry
    /// and exits 1 when the chain is broken.
    Verify,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: std::net::SocketAddr,

    /// The origin users reach Keyward at (`https://…` switches on Secure/__Host- cookies).
    /// Defaults to `http://<listen>`.
    #[arg(long, env = "KEYWARD_PUBLIC_ORIGIN")]
    pub public_origin: Option<url::Url>,

    /// The WebAuthn relying party id passkeys are bound to: a host name, never an IP address.
    /// Defaults to the public origin's host, or `localhost` when that is an IP address.
    #[arg(long, env = "KEYWARD_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,

    /// The origin browsers use passkeys at (its host must be the RP id or below it). Defaults
    /// to the public origin, with `localhost` for an IP address.
    #[arg(long, env = "KEYWARD_WEBAUTHN_ORIGIN")]
    pub webauthn_origin: Option<url::Url>,

    /// Whether anyone may create an account: `open` or `closed`.
    #[arg(long, env = "KEYWARD_SIGNUP", default_value = "closed", value_parser = ["open", "closed"])]
    pub signup: String,

    /// Minutes without a request after which a console session ends.
    #[arg(long, env = "KEYWARD_SESSION_IDLE_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_minutes: u64,

    /// Hours after sign-in after which a console session ends, however active.
    #[arg(long, env = "KEYWARD_SESSION_ABSOLUTE_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_absolute_hours: u64,

    /// Failed sign-ins allowed per account (and per trusted browser) in a sliding hour.
    #[arg(long, env = "KEYWARD_SIGN_IN_FAILURES_PER_HOUR", default_value_t = 100)]
    pub sign_in_failures_per_hour: i64,

    /// Invitation emails the whole instance may send in a sliding hour, over every
    /// organization and sender: a bound on outgoing mail however many accounts ask.
    #[arg(long, env = "KEYWARD_INVITATIONS_PER_HOUR", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..))]
    pub invitations_per_hour: i64,

    /// Sign-in and sign-up attempts allowed per client address (IPv6: per /64) per minute.
    #[arg(long, env = "KEYWARD_AUTH_ATTEMPTS_PER_IP_PER_MINUTE", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_attempts_per_ip_per_minute: u32,

    /// Days the raw request log (and its per-minute rollup) is kept.
    #[arg(long, env = "KEYWARD_LOG_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub log_retention_days: u32,

    /// Client networks that may read GET /metrics without a token (comma-separated CIDRs).
    #[arg(
        long,
        env = "KEYWARD_METRICS_ALLOW",
        default_value = "127.0.0.0/8,::1/128",
        value_delimiter = ','
    )]
    pub metrics_allow: Vec<ipnet::IpNet>,

    /// Reverse proxies (comma-separated CIDRs) whose X-Forwarded-For is believed: a request
    /// from one is attributed to the rightmost forwarded address outside them. Default: none
    /// (the socket peer is the client; headers are ignored).
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// A bearer token that also opens GET /metrics (from any address). Default: none.
    #[arg(long, env = "KEYWARD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Where email goes: `smtp://host:25`, `smtp://user:pass@host:587?tls=required` (STARTTLS)
    /// or `smtps://user:pass@host:465`. Default: none (email stays queued in the outbox).
    #[arg(long, env = "KEYWARD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of Keyward's email.
    #[arg(
        long,
        env = "KEYWARD_MAIL_FROM",
        default_value = "Keyward <keyward@localhost>"
    )]
    pub mail_from: String,

    /// Server secret for HMACs (at least 32 characters). Default: the secret file.
    #[arg(long, env = "KEYWARD_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// The site options file (Leptos.toml) naming where the built JS/WASM/CSS live.
    #[arg(long, env = "KEYWARD_LEPTOS_CONFIG", default_value = "Leptos.toml")]
    pub leptos_config: String,

    /// Email of the admin created when the database has no user yet.
    #[arg(
        long,
        env = "KEYWARD_ADMIN_EMAIL",
        default_value = "admin@keyward.local"
    )]
    pub admin_email: String,

    /// Password of that admin. Default: a random one, printed once.
    #[arg(long, env = "KEYWARD_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateAdminArgs {
    #[arg(long)]
    pub email: String,
    #[arg(long, env = "KEYWARD_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Display name (defaults to the part of the email before `@`).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateKeyArgs {
    /// Organization id (`org_…`) or slug.
    #[arg(long)]
    pub org: String,
    #[arg(long)]
    pub name: String,
    /// Scopes as `resource:read|write`, e.g. `keys:write org:read`. Default: the basic preset.
    #[arg(long, num_args = 1..)]
    pub scopes: Vec<String>,
    /// `live` or `test`.
    #[arg(long, default_value = "live")]
    pub environment: String,
    /// RFC 3339 expiry.
    #[arg(long)]
    pub expires_at: Option<String>,
    /// Server secret (must match the one `serve` uses).
    #[arg(long, env = "KEYWARD_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}
