//! The audit chain: every domain event gets a place in one keyed hash chain; `keyward audit
//! verify` checks it and names the first entry that was edited or whose predecessor was
//! deleted. Runs on SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::ssr::audit::{chain_pending, verify};
use common::*;

#[tokio::test]
async fn the_chain_verifies_and_names_the_first_edited_or_deleted_entry() {
    let app = spawn().await;
    for i in 0..5 {
        app.user(&format!("u{i}@example.org"), None).await;
    }
    let (db, secret) = (&app.state.db, app.state.config.secret);
    let chained = chain_pending(db, &secret).await.unwrap();
    assert!(chained >= 5, "{chained}");
    assert_eq!(
        chain_pending(db, &secret).await.unwrap(),
        0,
        "nothing twice"
    );
    let v = verify(db, &secret).await.unwrap();
    assert_eq!(v.first_broken, None);
    assert_eq!((v.checked, v.pending), (chained, 0));

    // Later events follow on; before chaining they are counted as pending.
    app.user("late@example.org", None).await;
    assert!(verify(db, &secret).await.unwrap().pending >= 1);
    let more = chain_pending(db, &secret).await.unwrap();
    let v = verify(db, &secret).await.unwrap();
    assert_eq!((v.checked, v.first_broken), (chained + more, None));

    // Without the server secret the chain cannot be checked (nor recomputed after an edit).
    let v = verify(db, &[7u8; 32]).await.unwrap();
    assert_eq!(v.first_broken.unwrap().seq, 1);

    // An edited entry is named.
    let original: String = sqlx::query_scalar("select data from domain_event where seq = 3")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    let edit = |data: String| async move {
        sqlx::query("update domain_event set data = $1 where seq = 3")
            .bind(data)
            .execute(&db.writer)
            .await
            .unwrap();
    };
    edit(r#"{"forged":true}"#.to_string()).await;
    let broken = verify(db, &secret).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 3);
    assert!(broken.why.contains("edited"), "{broken:?}");
    edit(original).await;
    assert_eq!(verify(db, &secret).await.unwrap().first_broken, None);

    // A deleted entry is named by the one after it, and the command says so (exit 1).
    sqlx::query("delete from domain_event where seq = 4")
        .execute(&db.writer)
        .await
        .unwrap();
    let broken = verify(db, &secret).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 5);
    assert!(broken.why.contains("deleted"), "{broken:?}");
    let report = keyward_server::boot::audit_verify(db, &secret)
        .await
        .unwrap_err();
    assert!(report.contains("broken at entry #5"), "{report}");
}
