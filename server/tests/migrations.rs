//! Migrations apply cleanly, are idempotent, and produce the tables the app uses, on the
//! backend under test (SQLite by default, PostgreSQL with KEYWARD_TEST_DATABASE_URL).

mod common;

#[tokio::test]
async fn migrations_apply_and_are_idempotent() {
    let (db, _dir) = common::fresh_db().await;
    db.migrate().await.expect("second run is a no-op");
    for table in [
        "organization",
        "app_user",
        "membership",
        "session",
        "sign_in_failure",
        "domain_event",
        "instance_secret",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&db.reader)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        assert!(n >= 0);
    }
    let system: String =
        sqlx::query_scalar("select kind from organization where organization_id = 'org_system'")
            .fetch_one(&db.reader)
            .await
            .unwrap();
    assert_eq!(system, "system");
    let applied: i64 =
        sqlx::query_scalar("select count(*) from _sqlx_migrations where success = true")
            .fetch_one(&db.reader)
            .await
            .unwrap();
    assert_eq!(
        applied,
        std::fs::read_dir(format!(
            "{}/../migrations/sqlite",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .count() as i64
    );
}

/// Keys imported in plaintext before lists showed at most a quarter of them kept their first 12
/// characters: the migration cuts those to 4, and leaves our own keys' prefixes and the
/// prefixes importers chose for hashes as they were.
#[tokio::test]
async fn imported_keys_shown_by_twelve_characters_are_cut_to_four() {
    let (db, _dir) = common::empty_db().await;
    db.migrate_before(20261128000029).await.unwrap();
    let keys = [
        ("key_ours", "hmac-sha256", "kw_live_4eC3"),
        ("key_test", "hmac-sha256", "kw_test_9xQ2"),
        ("key_old_import", "hmac-sha256", "sk_live_AbCd"),
        // A 40-character key imported under the rule: its 10 characters are a quarter already.
        ("key_new_import", "hmac-sha256", "sk_live_Ab"),
        ("key_hash_twelve", "sha256", "legacy_12chr"),
    ];
    for (i, (id, algorithm, prefix)) in keys.iter().enumerate() {
        sqlx::query(
            "insert into api_key (api_key_id, organization_id, name, environment, key_hash, hash_algorithm, display_prefix, created_at, updated_at, signing_salt)
             values ($1, 'org_system', $1, 'live', $2, $3, $4, 0, 0, 'salt')",
        )
        .bind(*id)
        .bind(format!("{i:064}"))
        .bind(*algorithm)
        .bind(*prefix)
        .execute(&db.writer)
        .await
        .unwrap();
    }
    db.migrate().await.unwrap();
    let shown: Vec<(String, String)> =
        sqlx::query_as("select api_key_id, display_prefix from api_key order by api_key_id")
            .fetch_all(&db.reader)
            .await
            .unwrap();
    let expected = [
        ("key_hash_twelve", "legacy_12chr"),
        ("key_new_import", "sk_live_Ab"),
        ("key_old_import", "sk_l"),
        ("key_ours", "kw_live_4eC3"),
        ("key_test", "kw_test_9xQ2"),
    ]
    .map(|(id, prefix)| (id.to_string(), prefix.to_string()));
    assert_eq!(shown, expected);
}

#[tokio::test]
async fn constraints_hold() {
    let (db, _dir) = common::fresh_db().await;
    let bad_role = sqlx::query("insert into membership (organization_id, user_id, role, created_at) values ('org_system', 'usr_none', 'emperor', 0)")
        .execute(&db.writer)
        .await;
    assert!(bad_role.is_err(), "role check and foreign key");
    let bad_kind = sqlx::query("insert into organization (organization_id, name, slug, kind, created_at) values ('org_x', 'x', 'x', 'galaxy', 0)")
        .execute(&db.writer)
        .await;
    assert!(bad_kind.is_err());
}

#[tokio::test]
async fn runs_on_the_backend_it_was_asked_for() {
    let (db, _dir) = common::fresh_db().await;
    let expected = match std::env::var("KEYWARD_TEST_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => app::ssr::db::Backend::Postgres,
        _ => app::ssr::db::Backend::Sqlite,
    };
    assert_eq!(db.backend, expected);
    let version: String = match db.backend {
        app::ssr::db::Backend::Postgres => sqlx::query_scalar("select version()")
            .fetch_one(&db.reader)
            .await
            .unwrap(),
        app::ssr::db::Backend::Sqlite => sqlx::query_scalar("select 'SQLite ' || sqlite_version()")
            .fetch_one(&db.reader)
            .await
            .unwrap(),
    };
    println!("backend under test: {version}");
    let journal: Option<String> = match db.backend {
        app::ssr::db::Backend::Sqlite => Some(
            sqlx::query_scalar("pragma journal_mode")
                .fetch_one(&db.reader)
                .await
                .unwrap(),
        ),
        app::ssr::db::Backend::Postgres => None,
    };
    if let Some(mode) = journal {
        assert_eq!(mode, "wal");
    }
}

/// The SQLite and PostgreSQL sets are kept in step: the same migrations, by name, with the
/// same statements (comments may differ). A migration added or changed on one side only
/// fails here.
#[test]
fn both_backends_have_the_same_migrations() {
    let dir = |backend: &str| format!("{}/../migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let names = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let statements = |backend: &str, name: &str| {
        std::fs::read_to_string(format!("{}/{name}", dir(backend)))
            .unwrap()
            .lines()
            .map(|l| {
                l.split("--")
                    .next()
                    .unwrap_or_default()
                    .trim_end()
                    .to_string()
            })
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
    };
    let sqlite = names("sqlite");
    assert_eq!(
        sqlite,
        names("postgres"),
        "same migration files on both sides"
    );
    assert!(sqlite.len() >= 4);
    for name in &sqlite {
        assert_eq!(
            statements("sqlite", name),
            statements("postgres", name),
            "{name}: the statements differ between the backends"
        );
    }
}

/// The plumbing (state, database, session, CSRF, request id, config, events, limits,
/// passwords, and the error type) imports no domain: domains plug their state in, so a
/// domain can change without touching it, and no import cycle runs through it.
#[test]
fn plumbing_imports_no_domain() {
    let app = format!("{}/../app/src", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(format!("{app}/ssr"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    files.push(format!("{app}/error.rs"));
    assert!(files.len() >= 9, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for domain in ["access", "admin", "docs", "identity", "keys", "orgs", "ui"] {
            for form in [
                format!("crate::{domain}::"),
                format!("crate::{domain}}}"),
                format!("crate::{{{domain}"),
            ] {
                assert!(
                    !text.contains(&form),
                    "{file} imports the {domain} domain ({form})"
                );
            }
        }
    }
}
