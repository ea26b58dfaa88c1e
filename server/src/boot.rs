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
        keys: Default::default(),
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

/// `keyward create-key`: validates like the API does and returns the new secret.
pub async fn create_key(db: &Db, args: &crate::cli::CreateKeyArgs) -> anyhow_like::Result<String> {
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
    // The operator at the console of the machine may grant anything.
    let settings =
        app::keys::ssr::validate_new(&new, now_ms(), &|_| true).map_err(|e| e.message)?;
    let pepper = secret(db, args.secret.as_deref()).await?;
    let actor = app::keys::ssr::Actor {
        id: Some("cli"),
        source_ip: None,
    };
    let created = app::keys::ssr::create(db, &pepper, &org_id, None, &settings, actor)
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

#[cfg(test)]
mod tests {
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
        assert!(
            !cargo.contains("site-root"),
            "site-root belongs to Leptos.toml only"
        );
    }
}
