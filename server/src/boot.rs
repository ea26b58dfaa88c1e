//! Start-up: database, migrations, secrets, first admin, and the [`AppState`].

use crate::cli::ServeArgs;
use app::access::Role;
use app::ssr::{config::Config, db::now_ms, AppState, Db, Domains};
use leptos::prelude::LeptosOptions;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connects and applies migrations; any failure stops start-up with the reason.
pub async fn database(url: &str) -> anyhow_like::Result<Db> {
    let db = Db::connect(url)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    db.migrate()
        .await
        .map_err(|e| format!("migrations failed: {e}"))?;
    Ok(db)
}

/// Where the secret file goes by default: beside the SQLite database (`data/keyward.secret`
/// for `sqlite://data/keyward.db`), else `keyward.secret` in the working directory.
pub fn default_secret_file(database_url: &str) -> PathBuf {
    let sqlite_path = database_url
        .strip_prefix("sqlite:")
        .map(|rest| {
            rest.trim_start_matches("//")
                .split('?')
                .next()
                .unwrap_or_default()
        })
        .filter(|p| !p.is_empty() && !p.contains(":memory:"));
    match sqlite_path.and_then(|p| Path::new(p).parent()) {
        Some(dir) => dir.join("keyward.secret"),
        None => PathBuf::from("keyward.secret"),
    }
}

/// The server secret (the pepper of key hashes, signing secrets and device cookies):
///
/// 1. `KEYWARD_SECRET` when given (at least 32 characters);
/// 2. else the secret file (`--secret-file`, default [`default_secret_file`]), created with
///    mode 0600 on first start. An install that kept its secret in the database (before this
///    file existed) has it moved to the file once, and removed from the database, so that a
///    copy of the database alone cannot forge signatures or test guessed keys.
///
/// The database keeps only a check value (an HMAC under the secret): an instance started with
/// a different secret than the one the database was set up with refuses to start, instead of
/// refusing every key.
pub async fn secret(
    db: &Db,
    configured: Option<&str>,
    file: &Path,
) -> anyhow_like::Result<[u8; 32]> {
    let material = match configured {
        Some(s) if s.len() >= 32 => s.to_string(),
        Some(_) => return Err("KEYWARD_SECRET must be at least 32 characters".into()),
        None => secret_from_file(db, file).await?,
    };
    let secret: [u8; 32] = Sha256::digest(material.as_bytes()).into();
    check_secret(db, &secret).await?;
    Ok(secret)
}

async fn secret_from_file(db: &Db, file: &Path) -> anyhow_like::Result<String> {
    let stored: Option<String> =
        sqlx::query_scalar("select value from instance_secret where name = 'hmac'")
            .fetch_optional(&db.writer)
            .await
            .map_err(|e| e.to_string())?;
    let read = |file: &Path| -> anyhow_like::Result<String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the secret file {}: {e}", file.display()))?;
        let text = text.trim().to_string();
        if text.len() < 32 {
            return Err(format!(
                "the secret file {} holds fewer than 32 characters",
                file.display()
            ));
        }
        Ok(text)
    };
    if file.exists() {
        let material = read(file)?;
        if stored.is_some() {
            forget_stored_secret(db).await?;
        }
        return Ok(material);
    }
    let material = match stored {
        Some(value) => value,
        None => {
            use rand::Rng;
            hex::encode(rand::thread_rng().gen::<[u8; 32]>())
        }
    };
    write_secret_file(file, &material)?;
    forget_stored_secret(db).await?;
    tracing::info!(file = %file.display(), "server secret written to its file (mode 0600); back it up with the database");
    Ok(material)
}

async fn forget_stored_secret(db: &Db) -> anyhow_like::Result<()> {
    sqlx::query("delete from instance_secret where name = 'hmac'")
        .execute(&db.writer)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn write_secret_file(file: &Path, material: &str) -> anyhow_like::Result<()> {
    use std::io::Write;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(file)
        .map_err(|e| format!("cannot create the secret file {}: {e}", file.display()))?;
    writeln!(f, "{material}")
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write the secret file {}: {e}", file.display()))
}

/// Records the secret's check value on first start, and refuses a different secret later.
async fn check_secret(db: &Db, secret: &[u8; 32]) -> anyhow_like::Result<()> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(b"keyward-secret-check-v1");
    let check = hex::encode(mac.finalize().into_bytes());
    sqlx::query("insert into instance_secret_check (name, check_hmac, created_at) values ('hmac', $1, $2) on conflict (name) do nothing")
        .bind(&check)
        .bind(now_ms())
        .execute(&db.writer)
        .await
        .map_err(|e| e.to_string())?;
    let recorded: String =
        sqlx::query_scalar("select check_hmac from instance_secret_check where name = 'hmac'")
            .fetch_one(&db.writer)
            .await
            .map_err(|e| e.to_string())?;
    if recorded != check {
        return Err("this database was set up with a different server secret: start with the same KEYWARD_SECRET or secret file as the other instances (keys, signatures and device cookies depend on it)".into());
    }
    Ok(())
}

pub fn config(args: &ServeArgs, secret: [u8; 32]) -> anyhow_like::Result<Config> {
    let public_origin = match &args.public_origin {
        Some(url) => url.clone(),
        None => url::Url::parse(&format!("http://{}", args.listen)).map_err(|e| e.to_string())?,
    };
    let (rp_id, rp_origin) = Config::webauthn_defaults(&public_origin);
    let webauthn_rp_id = args.webauthn_rp_id.clone().unwrap_or(rp_id);
    let webauthn_origin = args.webauthn_origin.clone().unwrap_or(rp_origin.clone());
    if webauthn_rp_id.parse::<std::net::IpAddr>().is_ok() {
        return Err("KEYWARD_WEBAUTHN_RP_ID must be a host name such as localhost or example.com, not an IP address".into());
    }
    // Cookies and the cross-site check belong to the public origin: passkeys work there (or,
    // for an IP public origin, at its `localhost` twin on a loopback listener).
    if webauthn_origin.origin() != public_origin.origin()
        && webauthn_origin.origin() != rp_origin.origin()
    {
        return Err(format!(
            "KEYWARD_WEBAUTHN_ORIGIN must be the public origin ({}): sessions and the cross-site check belong to it",
            public_origin.origin().ascii_serialization()
        ));
    }
    let config = Config {
        signup_open: args.signup == "open",
        session_idle: Duration::from_secs(args.session_idle_minutes * 60),
        session_absolute: Duration::from_secs(args.session_absolute_hours * 3600),
        sign_in_failures_per_hour: args.sign_in_failures_per_hour,
        invitations_per_hour: args.invitations_per_hour,
        auth_attempts_per_ip_per_minute: args.auth_attempts_per_ip_per_minute,
        allowed_hosts: Config::hosts_for(&public_origin, args.listen),
        log_retention_days: args.log_retention_days,
        smtp_url: args.smtp_url.clone().filter(|u| !u.trim().is_empty()),
        mail_from: args.mail_from.clone(),
        metrics_allow: args.metrics_allow.clone(),
        trusted_proxies: args.trusted_proxies.clone(),
        metrics_token: args.metrics_token.clone().filter(|t| !t.trim().is_empty()),
        secret,
        public_origin,
        webauthn_rp_id,
        webauthn_origin,
        secret_file: None,
    };
    // A relying party webauthn-rs refuses (an origin outside the RP id) fails the start, not
    // every passkey request.
    config.webauthn().map_err(|e| e.message)?;
    Ok(config)
}

/// Finds the site options file: the path given, as is; or, for the default `Leptos.toml`
/// when the working directory has none, the one beside the binary (an installed layout:
/// `keyward`, `Leptos.toml` and the site in one folder).
pub fn find_leptos_config(given: &str) -> anyhow_like::Result<PathBuf> {
    let given_path = PathBuf::from(given);
    if given_path.is_file() {
        return Ok(given_path);
    }
    if given == "Leptos.toml" {
        if let Some(beside) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("Leptos.toml")))
            .filter(|p| p.is_file())
        {
            return Ok(beside);
        }
    }
    Err(format!(
        "cannot find the site options file {given:?} (looked in the working directory and beside the binary); pass --leptos-config /path/to/Leptos.toml"
    ))
}

/// The site options, from `Leptos.toml` (see [`find_leptos_config`]). A relative site root is
/// taken relative to that file's folder, so the binary serves its site from any working
/// directory.
pub fn leptos_options(
    path: &str,
    listen: std::net::SocketAddr,
) -> anyhow_like::Result<LeptosOptions> {
    let path = find_leptos_config(path)?;
    let conf = leptos::config::get_configuration(Some(&path.to_string_lossy()))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut options = conf.leptos_options;
    options.site_addr = listen;
    let root = Path::new(options.site_root.as_ref());
    if root.is_relative() {
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        options.site_root = base.join(root).to_string_lossy().into_owned().into();
    }
    Ok(options)
}

/// The one place the domains' in-memory state is composed. Fails on an unusable mail setting.
pub fn domains(db: &Db, config: &Config) -> anyhow_like::Result<Domains> {
    let mailer = app::notify::mail::Mailer::new(config.smtp_url.as_deref(), &config.mail_from)?;
    Ok(Domains::default()
        .with(mailer)
        .with(app::notify::ssr::UsageAlerts::default())
        .with(app::keys::ssr::KeyCache::default())
        .with(app::usage::ssr::RateLimiter::new(db.clone()))
        .with(app::usage::log::RequestLog::new(app::usage::log::CAPACITY))
        .with(crate::metrics::Metrics::default())
        .with(crate::export::ExportSlots::default())
        .with(route_catalog()))
}

/// The REST routes as the security scan sees them.
pub fn route_catalog() -> app::security::RouteCatalog {
    use crate::rest::Access;
    app::security::RouteCatalog(
        crate::rest::routes()
            .into_iter()
            .map(|r| app::security::RouteInfo {
                method: match r.method.as_str() {
                    "GET" => "GET",
                    "POST" => "POST",
                    "PUT" => "PUT",
                    "PATCH" => "PATCH",
                    "DELETE" => "DELETE",
                    _ => "OTHER",
                },
                path: r.path,
                permission: match r.access {
                    Access::Key(p) => Some(p),
                    _ => None,
                },
                requires: match r.access {
                    Access::Key(_) => "an API key",
                    Access::Public => "public",
                    Access::Operator => "operator (metrics networks or token)",
                },
            })
            .collect(),
    )
}

pub fn state(
    db: Db,
    config: Config,
    leptos_options: LeptosOptions,
) -> anyhow_like::Result<AppState> {
    let domains = domains(&db, &config)?;
    Ok(AppState::new(db, config, leptos_options, domains))
}

/// On an empty database, creates the first admin and prints the sign-in once (stdout, never
/// the log).
pub async fn bootstrap_admin(
    db: &Db,
    email: &str,
    password: Option<&str>,
    origin: &str,
) -> anyhow_like::Result<()> {
    if app::identity::ssr::any_user(db)
        .await
        .map_err(|e| e.message)?
    {
        return Ok(());
    }
    let password = match password {
        Some(p) => p.to_string(),
        None => random_password(),
    };
    let name = email.split('@').next().unwrap_or("admin");
    match app::identity::ssr::create_user(db, email, name, &password, Some(Role::Owner), None).await
    {
        Ok(_) => {}
        // Two instances starting together on an empty database: the other one made it.
        Err(e)
            if e.code == app::error::ErrorCode::Conflict
                && app::identity::ssr::any_user(db).await.unwrap_or(false) =>
        {
            return Ok(());
        }
        Err(e) => return Err(format!("cannot create the first admin: {}", e.message)),
    }
    println!("\n  First admin created. Sign in at {origin}/sign-in with\n    email:    {email}\n    password: {password}\n  This is shown once.\n");
    Ok(())
}

/// `keyward create-key`: validates like the API does and returns the new secret.
pub async fn create_key(
    db: &Db,
    args: &crate::cli::CreateKeyArgs,
    secret_file: &Path,
) -> anyhow_like::Result<String> {
    use app::keys::{Access, NewKey, Scopes};
    let org_id: Option<String> = sqlx::query_scalar(
        "select organization_id from organization where organization_id = $1 or slug = $1",
    )
    .bind(&args.org)
    .fetch_optional(&db.reader)
    .await
    .map_err(|e| e.to_string())?;
    let org_id = org_id.ok_or_else(|| format!("no organization {:?}", args.org))?;
    let mut scopes = Scopes::new();
    for s in &args.scopes {
        let (resource, access) = s
            .split_once(':')
            .ok_or_else(|| format!("scope {s:?} must look like resource:read or resource:write"))?;
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            _ => return Err(format!("scope {s:?}: access must be read or write")),
        };
        scopes.insert(resource.to_string(), access);
    }
    let new = NewKey {
        name: args.name.clone(),
        environment: Some(args.environment.clone()),
        scopes: (!scopes.is_empty()).then_some(scopes),
        expires_at: args.expires_at.clone(),
        ..Default::default()
    };
    // The operator at the console of the machine may grant anything the organization can hold.
    let grant = app::access::ssr::Grant::operator(&org_id);
    let settings = app::keys::ssr::validate_new(&new, now_ms(), &grant).map_err(|e| e.message)?;
    let pepper = secret(db, args.secret.as_deref(), secret_file).await?;
    let acting = app::keys::ssr::Acting::new(&grant, None);
    let created = app::keys::ssr::create(db, &pepper, acting, None, &settings)
        .await
        .map_err(|e| e.message)?;
    Ok(created.key)
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Start-up errors are plain messages: they are printed, and the process exits non-zero.
pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, String>;
}

/// `keyward audit verify`: chains what is pending, then walks the chain. Answers the report
/// line on success; the first broken entry is an error (exit 1).
pub async fn audit_verify(db: &Db, secret: &[u8; 32]) -> anyhow_like::Result<String> {
    use app::ssr::audit;
    while audit::chain_pending(db, secret)
        .await
        .map_err(|e| e.message)?
        > 0
    {}
    let v = audit::verify(db, secret).await.map_err(|e| e.message)?;
    match v.first_broken {
        None => Ok(format!(
            "audit chain verified: {} entries, {} not chained yet",
            v.checked, v.pending
        )),
        Some(b) => Err(format!(
            "audit chain broken at entry #{} ({}): {}",
            b.seq, b.event_id, b.why
        )),
    }
}

/// `keyward security-scan`: the instance's report (the system organization's), as text or
/// JSON, and its worst severity.
pub async fn security_scan(
    db: &Db,
    config: &Config,
    json: bool,
) -> anyhow_like::Result<(String, Option<app::security::Severity>)> {
    let report = app::security::ssr::scan(
        db,
        config,
        &route_catalog(),
        // The command line's report: a holder of its own.
        &app::usage::stats::Reader::new(app::access::ssr::SYSTEM_ORG_ID, "cli"),
        app::security::ssr::Sections::ALL,
        app::ssr::db::now_ms(),
    )
    .await
    .map_err(|e| e.message)?;
    let worst = report.worst();
    if json {
        return Ok((
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
            worst,
        ));
    }
    let mut out = format!(
        "Keyward security scan, {}\n\nConfiguration\n",
        report.generated_at
    );
    if report.config.is_empty() {
        out.push_str("  no risk found\n");
    }
    for c in &report.config {
        out.push_str(&format!(
            "  [{}] {}: {}\n",
            c.severity.as_str(),
            c.code,
            c.message
        ));
    }
    out.push_str("\nAdministrators without two-factor authentication\n");
    if report.admins_without_two_factor.is_empty() {
        out.push_str("  none\n");
    }
    for a in &report.admins_without_two_factor {
        out.push_str(&format!(
            "  [high] {} ({} of {})\n",
            a.email, a.role, a.organization
        ));
    }
    out.push_str("\nKeys\n");
    if report.keys.is_empty() {
        out.push_str("  no active key has an issue\n");
    }
    for k in &report.keys {
        let issues: Vec<&str> = k.issues.iter().map(|i| i.label()).collect();
        out.push_str(&format!(
            "  {} {} {} ({}): {}\n",
            k.organization_id,
            k.key_id,
            k.display_prefix,
            k.name,
            issues.join("; ")
        ));
    }
    let without: Vec<&app::security::EndpointCheck> = report
        .endpoints
        .iter()
        .filter(|e| e.no_permission)
        .collect();
    out.push_str(&format!(
        "\nEndpoints: {} in all; {} require no permission:\n",
        report.endpoints.len(),
        without.len()
    ));
    for e in without {
        out.push_str(&format!("  {} {} ({})\n", e.kind, e.name, e.requires));
    }
    Ok((out, worst))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// cargo-leptos' `name` (Cargo.toml) and the server's `output-name` (Leptos.toml) must name
    /// the same bundle, or the server would link scripts that were never built.
    #[test]
    fn leptos_settings_agree() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let cargo = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
        let name = cargo
            .lines()
            .skip_while(|l| !l.starts_with("[[workspace.metadata.leptos]]"))
            .find_map(|l| l.strip_prefix("name = "))
            .expect("name in [[workspace.metadata.leptos]]")
            .trim_matches('"');
        let options = super::leptos_options(
            &format!("{root}/Leptos.toml"),
            "127.0.0.1:3000".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(&*options.output_name, name);
        assert_eq!(&*options.site_pkg_dir, "pkg");
        assert!(options.hash_files, "Leptos.toml turns hashed file names on");
        assert!(
            cargo.contains("\nhash-files = true"),
            "cargo-leptos must hash the file names the server expects"
        );
        assert!(
            Path::new(&*options.site_root).is_absolute()
                && options.site_root.ends_with("target/site"),
            "site root resolved beside Leptos.toml: {}",
            options.site_root
        );
        let missing =
            super::leptos_options("no/such/Leptos.toml", "127.0.0.1:3000".parse().unwrap());
        assert!(missing.unwrap_err().contains("--leptos-config"));
        assert!(
            !cargo.contains("site-root"),
            "site-root belongs to Leptos.toml only"
        );
    }
}
