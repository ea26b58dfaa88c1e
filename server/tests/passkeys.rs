//! Passkeys (WebAuthn) through the server functions, with a software authenticator that signs
//! real P-256 assertions: registration (re-authenticated, named, ending the other sessions),
//! passwordless sign-in, the passkey as the second step, and the ceremony state — used once,
//! only by the session that started it, only before it expires, only for its purpose. Runs on
//! SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use data_encoding::BASE64URL_NOPAD as B64;
use http::StatusCode;
use p256::ecdsa::{signature::Signer, Signature, SigningKey};
use sha2::{Digest, Sha256};

/// The relying party the test configuration names.
const RP_ID: &str = "localhost";
const RP_ORIGIN: &str = "http://localhost:3000";

/// A minimal CBOR writer: what attestation objects and COSE keys need.
enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(&'static str),
    Map(Vec<(Cbor, Cbor)>),
}

impl Cbor {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            _ => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(i) if *i >= 0 => Self::head(out, 0, *i as u64),
            Cbor::Int(i) => Self::head(out, 1, (-1 - *i) as u64),
            Cbor::Bytes(b) => {
                Self::head(out, 2, b.len() as u64);
                out.extend(b);
            }
            Cbor::Text(t) => {
                Self::head(out, 3, t.len() as u64);
                out.extend(t.as_bytes());
            }
            Cbor::Map(entries) => {
                Self::head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.encode(out);
                    v.encode(out);
                }
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// One discoverable credential in a software authenticator.
#[derive(Clone)]
struct SoftKey {
    id: Vec<u8>,
    key: SigningKey,
    user_handle: Vec<u8>,
    counter: u32,
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    serde_json::json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })
        .to_string()
        .into_bytes()
}

fn rp_hash() -> Vec<u8> {
    Sha256::digest(RP_ID.as_bytes()).to_vec()
}

impl SoftKey {
    /// Answers registration options (the `start_passkey_registration` reply) with a new
    /// credential: the `RegisterPublicKeyCredential` JSON.
    fn create(options: &serde_json::Value, origin: &str) -> (SoftKey, String) {
        use rand::RngCore;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let key = SigningKey::from_slice(&secret).expect("a P-256 scalar");
        let mut id = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let public = options["publicKey"].clone();
        let user_handle = B64
            .decode(public["user"]["id"].as_str().unwrap().as_bytes())
            .unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let xy = &point.as_bytes()[1..];
        let cose = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(3), Cbor::Int(-7)),
            (Cbor::Int(-1), Cbor::Int(1)),
            (Cbor::Int(-2), Cbor::Bytes(xy[..32].to_vec())),
            (Cbor::Int(-3), Cbor::Bytes(xy[32..].to_vec())),
        ])
        .bytes();
        let mut auth_data = rp_hash();
        auth_data.push(0x45); // user present, user verified, attested credential data
        auth_data.extend(0u32.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend((id.len() as u16).to_be_bytes());
        auth_data.extend(&id);
        auth_data.extend(cose);
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt"), Cbor::Text("none")),
            (Cbor::Text("attStmt"), Cbor::Map(vec![])),
            (Cbor::Text("authData"), Cbor::Bytes(auth_data)),
        ])
        .bytes();
        let challenge = public["challenge"].as_str().unwrap();
        let credential = serde_json::json!({
            "id": B64.encode(&id),
            "rawId": B64.encode(&id),
            "type": "public-key",
            "response": {
                "attestationObject": B64.encode(&attestation),
                "clientDataJSON": B64.encode(&client_data("webauthn.create", challenge, origin)),
            },
            "extensions": {},
        });
        (
            SoftKey {
                id,
                key,
                user_handle,
                counter: 0,
            },
            credential.to_string(),
        )
    }

    /// Answers authentication options with a signed assertion: the `PublicKeyCredential` JSON.
    fn get(&mut self, options: &serde_json::Value, origin: &str) -> String {
        self.counter += 1;
        self.assert_with(options, origin, self.counter)
    }

    fn assert_with(&self, options: &serde_json::Value, origin: &str, counter: u32) -> String {
        self.assert_flags(options, origin, counter, 0x05) // user present, user verified
    }

    fn assert_flags(
        &self,
        options: &serde_json::Value,
        origin: &str,
        counter: u32,
        flags: u8,
    ) -> String {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        let client = client_data("webauthn.get", challenge, origin);
        let mut auth_data = rp_hash();
        auth_data.push(flags);
        auth_data.extend(counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client));
        let signature: Signature = self.key.sign(&signed);
        serde_json::json!({
            "id": B64.encode(&self.id),
            "rawId": B64.encode(&self.id),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(&auth_data),
                "clientDataJSON": B64.encode(&client),
                "signature": B64.encode(signature.to_der().as_bytes()),
                "userHandle": B64.encode(&self.user_handle),
            },
            "extensions": {},
        })
        .to_string()
    }
}

/// Starts a passkey registration for the browser's user, re-authenticated with the password.
async fn start_registration(app: &TestApp, b: &mut Browser) -> Reply {
    app.rpc(
        b,
        "start_passkey_registration",
        &[("current_password", PASSWORD)],
    )
    .await
}

/// Registers a passkey named `name` for the browser's user; answers the authenticator's key.
async fn register(app: &TestApp, b: &mut Browser, name: &str) -> SoftKey {
    let r = start_registration(app, b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let options = r.json();
    assert_eq!(options["publicKey"]["rp"]["id"], RP_ID);
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"], "required",
        "a discoverable credential, to sign in with alone"
    );
    let (key, credential) = SoftKey::create(&options, RP_ORIGIN);
    let r = app
        .rpc(
            b,
            "finish_passkey_registration",
            &[("name", name), ("credential", &credential)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["name"], name);
    key
}

/// Starts a passwordless sign-in in `b`; answers the options.
async fn sign_in_options(app: &TestApp, b: &mut Browser) -> serde_json::Value {
    let r = app.rpc(b, "start_passkey_sign_in", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let options = r.json();
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "a passwordless challenge names no user: {options}"
    );
    options
}

async fn finish_sign_in(app: &TestApp, b: &mut Browser, credential: &str) -> Reply {
    app.rpc(b, "finish_passkey_sign_in", &[("credential", credential)])
        .await
}

#[tokio::test]
async fn a_registered_passkey_signs_in_alone_and_each_challenge_is_used_once() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut laptop = app.signed_in("ann@example.org").await;
    let mut phone = app.signed_in("ann@example.org").await;

    // Re-authentication first; bad names are refused and nothing is stored.
    let r = app
        .rpc(
            &mut laptop,
            "start_passkey_registration",
            &[("current_password", "wrong password")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a wrong password",
    );
    let r = app
        .rpc(
            &mut laptop,
            "start_passkey_registration",
            &[("current_password", PASSWORD)],
        )
        .await;
    let (_, credential) = SoftKey::create(&r.json(), RP_ORIGIN);
    for bad in ["", "   ", &"x".repeat(65), "tab\there"] {
        let r = app
            .rpc(
                &mut laptop,
                "finish_passkey_registration",
                &[("name", bad), ("credential", &credential)],
            )
            .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a bad name");
    }
    let r = app
        .rpc(
            &mut laptop,
            "finish_passkey_registration",
            &[("name", "Laptop"), ("credential", "{not json")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "not a credential",
    );
    assert_eq!(app.count("passkey").await, 0);

    // Another session of the user cannot finish this session's registration.
    let r = app
        .rpc(
            &mut phone,
            "finish_passkey_registration",
            &[("name", "Phone"), ("credential", &credential)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "another session",
    );
    // A credential made for another origin is refused (and uses the ceremony up).
    let r = app
        .rpc(
            &mut laptop,
            "start_passkey_registration",
            &[("current_password", PASSWORD)],
        )
        .await;
    let (_, foreign) = SoftKey::create(&r.json(), "http://evil.example");
    let r = app
        .rpc(
            &mut laptop,
            "finish_passkey_registration",
            &[("name", "Laptop"), ("credential", &foreign)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a foreign origin",
    );
    assert_eq!(app.count("passkey").await, 0);

    let mut key = register(&app, &mut laptop, "Laptop").await;
    assert_eq!(app.count("passkey").await, 1);
    assert_eq!(
        app.count("webauthn_ceremony").await,
        0,
        "finished ceremonies are gone"
    );
    assert_eq!(
        app.signed_in_as(&mut phone).await,
        None,
        "adding a factor ends the other sessions"
    );
    assert_eq!(
        app.signed_in_as(&mut laptop).await.as_deref(),
        Some("ann@example.org")
    );
    let r = app.rpc(&mut laptop, "my_passkeys", &[]).await;
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "Laptop");
    let mut fields: Vec<&String> = list[0].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["created_at", "id", "last_used_at", "name"],
        "the credential is never sent back"
    );
    let mail: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where to_address = $1 and subject like 'A passkey was added%'",
    )
    .bind("ann@example.org")
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(mail, 1, "the owner hears of a new passkey");

    // Sign in with the passkey alone, in a new browser.
    let mut b = Browser::default();
    let options = sign_in_options(&app, &mut b).await;
    let answer = key.get(&options, RP_ORIGIN);
    let r = finish_sign_in(&app, &mut b, &answer).await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("ann@example.org")
    );

    // The same answer again: its challenge is spent.
    let mut replay = Browser::default();
    sign_in_options(&app, &mut replay).await;
    let r = finish_sign_in(&app, &mut replay, &answer).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "a replayed answer",
    );
    // The same session finishing twice at once (one cookie, two requests): one ceremony, one
    // sign-in; the other finds it gone.
    let mut twice = Browser::default();
    let options = sign_in_options(&app, &mut twice).await;
    let answer = key.get(&options, RP_ORIGIN);
    let (mut first, mut second) = (twice.clone(), twice.clone());
    let (a, b) = tokio::join!(
        finish_sign_in(&app, &mut first, &answer),
        finish_sign_in(&app, &mut second, &answer)
    );
    let ok = |r: &Reply| r.status.is_success() || r.status.is_redirection();
    assert_eq!(
        [ok(&a), ok(&b)].iter().filter(|x| **x).count(),
        1,
        "{} {} / {} {}",
        a.status,
        a.body,
        b.status,
        b.body
    );
    let refused = if ok(&a) { &b } else { &a };
    assert_refused(
        refused,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a reused ceremony",
    );

    // Without user verification (touch only, no PIN or biometrics): not a passkey sign-in.
    let mut touch = Browser::default();
    let options = sign_in_options(&app, &mut touch).await;
    key.counter += 1;
    let r = finish_sign_in(
        &app,
        &mut touch,
        &key.assert_flags(&options, RP_ORIGIN, key.counter, 0x01),
    )
    .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "user not verified",
    );
    assert_eq!(app.signed_in_as(&mut touch).await, None);

    // An answer to one session's challenge, sent from another session.
    let mut victim = Browser::default();
    let options = sign_in_options(&app, &mut victim).await;
    let stolen = key.get(&options, RP_ORIGIN);
    let mut thief = Browser::default();
    let r = finish_sign_in(&app, &mut thief, &stolen).await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "no ceremony in this session",
    );
    assert_eq!(app.signed_in_as(&mut thief).await, None);
    sign_in_options(&app, &mut thief).await;
    let r = finish_sign_in(&app, &mut thief, &stolen).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "another challenge",
    );
    assert_eq!(app.signed_in_as(&mut thief).await, None);

    // An expired ceremony.
    let mut late = Browser::default();
    let options = sign_in_options(&app, &mut late).await;
    sqlx::query("update webauthn_ceremony set expires_at = $1")
        .bind(app::ssr::db::now_ms() - 1)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let answer = key.get(&options, RP_ORIGIN);
    let r = finish_sign_in(&app, &mut late, &answer).await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "an expired ceremony",
    );
    assert_eq!(app.signed_in_as(&mut late).await, None);

    // A cloned authenticator (its counter behind the stored one) is refused.
    let mut clone = Browser::default();
    let options = sign_in_options(&app, &mut clone).await;
    let r = finish_sign_in(&app, &mut clone, &key.assert_with(&options, RP_ORIGIN, 1)).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "a counter going back",
    );
    assert_eq!(app.signed_in_as(&mut clone).await, None);

    // A disabled account signs in with nothing.
    let user_id: String = sqlx::query_scalar("select user_id from app_user where email = $1")
        .bind("ann@example.org")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    app.disable_user(&user_id).await;
    let mut b = Browser::default();
    let options = sign_in_options(&app, &mut b).await;
    let r = finish_sign_in(&app, &mut b, &key.get(&options, RP_ORIGIN)).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "a disabled account",
    );
}

#[tokio::test]
async fn a_passkey_is_the_second_step_after_the_password() {
    let app = spawn().await;
    app.user("bob@example.org", None).await;
    let mut first = app.signed_in("bob@example.org").await;
    let mut key = register(&app, &mut first, "Security key").await;

    // The password alone now leads to the second step, which offers the passkey only.
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "bob@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.body
    );
    assert_eq!(app.signed_in_as(&mut b).await, None);
    let r = app.rpc(&mut b, "second_factor_options", &[]).await;
    assert_eq!(
        r.json(),
        serde_json::json!({ "code": false, "passkey": true })
    );

    // Another user's passkey does not pass Bob's step.
    app.user("eve@example.org", None).await;
    let mut eve = app.signed_in("eve@example.org").await;
    let mut eves = register(&app, &mut eve, "Eve's").await;
    let r = app.rpc(&mut b, "start_passkey_second_factor", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let options = r.json();
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "only Bob's passkey is asked for");
    let r = app
        .rpc(
            &mut b,
            "verify_passkey_second_factor",
            &[("credential", &eves.get(&options, RP_ORIGIN))],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "another user's passkey",
    );
    assert_eq!(app.signed_in_as(&mut b).await, None);

    // Bob's passkey does.
    let r = app.rpc(&mut b, "start_passkey_second_factor", &[]).await;
    let options = r.json();
    let r = app
        .rpc(
            &mut b,
            "verify_passkey_second_factor",
            &[("credential", &key.get(&options, RP_ORIGIN))],
        )
        .await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.body
    );
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("bob@example.org")
    );
    let factor: String = sqlx::query_scalar(
        "select data from domain_event where kind = 'user.signed_in' and data like '%second_factor%'",
    )
    .fetch_one(&app.state.db.writer)
    .await
    .unwrap();
    assert!(factor.contains("\"passkey\""), "{factor}");

    // A challenge started before a later use of the passkey, answered by a clone one step
    // behind: refused, though it is past what the challenge's start knew.
    let mut late = Browser::default();
    app.rpc(
        &mut late,
        "sign_in",
        &[("email", "bob@example.org"), ("password", PASSWORD)],
    )
    .await;
    let stale = app
        .rpc(&mut late, "start_passkey_second_factor", &[])
        .await
        .json();
    let mut now = Browser::default();
    let options = sign_in_options(&app, &mut now).await;
    let r = finish_sign_in(&app, &mut now, &key.get(&options, RP_ORIGIN)).await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.body
    );
    let r = app
        .rpc(
            &mut late,
            "verify_passkey_second_factor",
            &[(
                "credential",
                &key.assert_with(&stale, RP_ORIGIN, key.counter),
            )],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a counter that did not move",
    );
    assert_eq!(app.signed_in_as(&mut late).await, None);

    // A ceremony started for Bob's pending sign-in does not pass Eve's, in the same browser.
    let mut switch = Browser::default();
    app.rpc(
        &mut switch,
        "sign_in",
        &[("email", "bob@example.org"), ("password", PASSWORD)],
    )
    .await;
    let bobs = app
        .rpc(&mut switch, "start_passkey_second_factor", &[])
        .await
        .json();
    app.rpc(
        &mut switch,
        "sign_in",
        &[("email", "eve@example.org"), ("password", PASSWORD)],
    )
    .await;
    let r = app
        .rpc(
            &mut switch,
            "verify_passkey_second_factor",
            &[("credential", &key.get(&bobs, RP_ORIGIN))],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "another user's ceremony",
    );
    assert_eq!(app.signed_in_as(&mut switch).await, None);

    // Without a pending sign-in there is nothing to start.
    let mut nobody = Browser::default();
    let r = app
        .rpc(&mut nobody, "start_passkey_second_factor", &[])
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "no pending sign-in",
    );

    // Removing it needs the password, ends the other sessions, and the password alone signs
    // in again.
    let id = app.rpc(&mut b, "my_passkeys", &[]).await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .rpc(
            &mut b,
            "remove_passkey",
            &[("passkey_id", &id), ("current_password", "wrong password")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a wrong password",
    );
    // Eve cannot remove Bob's.
    let r = app
        .rpc(
            &mut eve,
            "remove_passkey",
            &[("passkey_id", &id), ("current_password", PASSWORD)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::NOT_FOUND,
        "not_found",
        "another user's passkey",
    );
    assert_eq!(app.count("passkey").await, 2);
    let r = app
        .rpc(
            &mut b,
            "remove_passkey",
            &[("passkey_id", &id), ("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("passkey").await, 1);
    assert_eq!(
        app.signed_in_as(&mut first).await,
        None,
        "other sessions end"
    );
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("bob@example.org")
    );
    let mut again = app.signed_in("bob@example.org").await;
    assert_eq!(
        app.signed_in_as(&mut again).await.as_deref(),
        Some("bob@example.org"),
        "no factor left: the password alone signs in"
    );

    // A passkey alone gets no recovery codes (they stand in for the authenticator app).
    let r = app
        .rpc(
            &mut eve,
            "regenerate_recovery_codes",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "recovery codes without an app",
    );
    assert_eq!(app.count("recovery_code").await, 0);

    // An administrator's "turn off two-factor authentication" removes passkeys too.
    app.user("root@example.org", Some(app::access::Role::Owner))
        .await;
    let mut root = app.signed_in("root@example.org").await;
    let eve_id: String = sqlx::query_scalar("select user_id from app_user where email = $1")
        .bind("eve@example.org")
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    let r = app
        .rpc(&mut root, "reset_user_two_factor", &[("user_id", &eve_id)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("passkey").await, 0);
    assert_eq!(app.signed_in_as(&mut eve).await, None, "her sessions ended");
}

/// An account holds at most `PASSKEYS_MAX` passkeys (every registration and second step loads
/// them all): at the bound a registration is refused before its ceremony starts, and one that
/// started with a place free but finishes after another took it is refused too (409, nothing
/// stored, no session ended).
#[tokio::test]
async fn an_account_holds_a_bounded_number_of_passkeys() {
    use app::identity::passkeys::PASSKEYS_MAX;
    let app = spawn().await;
    let user = app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    register(&app, &mut b, "laptop").await;
    // Copies of the real one, under ids of their own, fill all but one place.
    let copy = |i: usize| {
        let app = &app;
        async move {
            sqlx::query(
                "insert into passkey (passkey_id, user_id, name, credential_id, credential, created_at, sign_count)
                 select $1, user_id, $2, $3, credential, created_at, 0 from passkey where name = 'laptop'",
            )
            .bind(format!("pky_copy{i}"))
            .bind(format!("copy {i}"))
            .bind(format!("copy-credential-{i}"))
            .execute(&app.state.db.writer)
            .await
            .unwrap();
        }
    };
    for i in 0..PASSKEYS_MAX - 2 {
        copy(i).await;
    }
    // One place left: a ceremony starts; another tab takes the place before it finishes.
    let r = start_registration(&app, &mut b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (_, credential) = SoftKey::create(&r.json(), RP_ORIGIN);
    copy(PASSKEYS_MAX).await;
    let before = app.snapshot().await;
    let sessions = app.count("session").await;
    let r = app
        .rpc(
            &mut b,
            "finish_passkey_registration",
            &[("name", "phone"), ("credential", &credential)],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "the 21st, finished");
    assert!(
        r.body.contains(&format!("{PASSKEYS_MAX} passkeys")),
        "{}",
        r.body
    );
    let held: i64 = sqlx::query_scalar("select count(*) from passkey where user_id = $1")
        .bind(&user)
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(held, PASSKEYS_MAX as i64);
    assert_eq!(app.snapshot().await, before, "rows changed");
    assert_eq!(app.count("session").await, sessions, "no session ended");
    // At the bound, no ceremony starts.
    let r = start_registration(&app, &mut b).await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "the 21st, started");
}
