//! `docs/permissions.md` holds a reference generated from the code: the permission catalog,
//! what the built-in roles grant, and the guard of every server function and REST route. This
//! test fails when that part of the file is out of date; run it with `KEYWARD_UPDATE_DOCS=1`
//! to rewrite it.

use app::access::policy::{Guard, SERVER_FNS};
use app::access::{Permission, Role};
use keyward_server::rest::{routes, Access};
use std::fmt::Write;

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE (server/tests/docs_reference.rs) -->";
const END: &str = "<!-- END GENERATED REFERENCE -->";

fn code(s: &str) -> String {
    format!("`{s}`")
}

fn reference() -> String {
    let mut out = String::new();
    out.push_str("### Permission catalog\n\n| Permission | Allows | Held in | Brings along |\n| --- | --- | --- | --- |\n");
    for p in Permission::ALL {
        let implied: Vec<String> = p.implied().iter().map(|q| code(q.as_str())).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(p.as_str()),
            p.description(),
            if p.is_instance() {
                "the `system` organization only"
            } else {
                "every organization"
            },
            if implied.is_empty() {
                "—".to_string()
            } else {
                implied.join(", ")
            }
        );
    }
    out.push_str("\n### What the built-in roles grant\n\nEvery permission listed, with what it brings along; instance permissions only in the `system` organization.\n\n| Role | Grants |\n| --- | --- |\n");
    for role in [Role::Owner, Role::Admin, Role::Member, Role::Viewer] {
        let names: Vec<String> = role
            .permissions()
            .iter()
            .map(|p| {
                if p.is_instance() {
                    format!("{} (system)", code(p.as_str()))
                } else {
                    code(p.as_str())
                }
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", role.as_str(), names.join(", "));
    }
    out.push_str("\n### Server functions (`POST /rpc/<name>`)\n\n| Function | Who may call it |\n| --- | --- |\n");
    let mut fns: Vec<_> = SERVER_FNS.iter().collect();
    fns.sort_by_key(|(name, _)| *name);
    for (name, guard) in fns {
        let who = match guard {
            Guard::Public => "anyone".to_string(),
            Guard::SignedIn => "any signed-in user (their own data)".to_string(),
            Guard::Enrolling => {
                "any signed-in user, also before the second factor an organization requires"
                    .to_string()
            }
            Guard::Org(p) => format!("{} in the organization named", code(p.as_str())),
            Guard::Instance(p) => format!("{} in the `system` organization", code(p.as_str())),
        };
        let _ = writeln!(out, "| {} | {who} |", code(name));
    }
    out.push_str("\n### REST routes\n\n| Route | Needs |\n| --- | --- |\n");
    for spec in routes() {
        let needs = match spec.access {
            Access::Public => "nothing".to_string(),
            Access::Operator => "an allowed address or the metrics token".to_string(),
            Access::Key(p) => format!("a key holding {}", code(p.as_str())),
        };
        let _ = writeln!(out, "| `{} {}` | {needs} |", spec.method, spec.path);
    }
    out
}

#[test]
fn the_generated_reference_in_docs_permissions_md_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/permissions.md");
    let text = std::fs::read_to_string(path).unwrap();
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("docs/permissions.md has no {BEGIN} … {END} section");
    };
    let current = &text[start + BEGIN.len()..end];
    let wanted = format!("\n\n{}\n", reference());
    if current == wanted {
        return;
    }
    if std::env::var("KEYWARD_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let updated = format!("{}{BEGIN}{wanted}{}", &text[..start], &text[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    panic!(
        "docs/permissions.md's generated reference is out of date: run \
         `KEYWARD_UPDATE_DOCS=1 cargo test -p keyward-server --test docs_reference` and commit it"
    );
}
