//! Start-up: database, migrations, secrets, first admin, and the [`AppState`].

use crate::cli::ServeArgs;
use app::access::Role;
use app::ssr::{config::Config, db::now_ms, AppState, Db};
use leptos::prelude::LeptosOptions;
use sha2::{Digest, Sha256};
use std::sync::Arc;
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

/// The HMAC secret: `KEYWARD_SECRET` when set, else one generated once and kept in the
/// database (so every instance on the same database agrees).
pub async fn secret(db: &Db, configured: Option<&str>) -> anyhow_like::Result<[u8; 32]> {
    let material = match configured {
        Some(s) if s.len() >= 32 => s.to_string(),
        Some(_) => return Err("KEYWARD_SECRET must be at least 32 characters".into()),
        None => {
            use rand::Rng;
            let fresh = hex::encode(rand::thread_rng().gen::<[u8; 32]>());
            sqlx::query("insert into instance_secret (name, value, created_at) values ('hmac', $1, $2) on conflict (name) do nothing")
                .bind(&fresh)
                .bind(now_ms())
                .execute(&db.writer)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query_scalar::<_, String>("select value from instance_secret where name = 'hmac'")
                .fetch_one(&db.reader)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    Ok(Sha256::digest(material.as_bytes()).into())
}

pub fn config(args: &ServeArgs, secret: [u8; 32]) -> anyhow_like::Result<Config> {
    let public_origin = match &args.public_origin {
        Some(url) => url.clone(),
        None => url::Url::parse(&format!("http://{}", args.listen)).map_err(|e| e.to_string())?,
    };
    Ok(Config {
        public_origin,
        signup_open: args.signup == "open",
        session_idle: Duration::from_secs(args.session_idle_minutes * 60),
        session_absolute: Duration::from_secs(args.session_absolute_hours * 3600),
        sign_in_failures_per_hour: args.sign_in_failures_per_hour,
        secret,
    })
}

pub fn leptos_options(
    path: &str,
    listen: std::net::SocketAddr,
) -> anyhow_like::Result<LeptosOptions> {
    let conf = leptos::config::get_configuration(Some(path))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut options = conf.leptos_options;
    options.site_addr = listen;
    Ok(options)
}

pub fn state(db: Db, config: Config, leptos_options: LeptosOptions) -> AppState {
    AppState {
        db,
        config: Arc::new(config),
        leptos_options,
    }
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
    app::identity::ssr::create_user(db, email, name, &password, Some(Role::Owner), None)
        .await
        .map_err(|e| format!("cannot create the first admin: {}", e.message))?;
    println!("\n  First admin created. Sign in at {origin}/sign-in with\n    email:    {email}\n    password: {password}\n  This is shown once.\n");
    Ok(())
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
