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
