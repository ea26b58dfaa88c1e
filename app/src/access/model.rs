//! Roles and permissions as data: an organization's role graph, and the resolution of
//! **effective permissions** with where each one comes from.
//!
//! A role grants what it lists directly, what its permission groups hold, everything its
//! parents grant (to any depth), and every permission those require (dependencies, also to any
//! depth). The built-in roles and the built-in catalog's dependencies are declared in code
//! ([`super::Role`], [`super::Permission::implied`]); custom roles, groups, dynamic permissions
//! and dependencies are rows. Pure code: the server loads an [`AccessModel`] per organization
//! (cached, see `access::ssr`), the console shows what [`AccessModel::effective`] returns.

use super::{Permission, Role};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// One role of the graph.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub id: String,
    pub name: String,
    pub builtin: bool,
    pub parents: Vec<String>,
    /// Granted directly.
    pub permissions: Vec<String>,
    /// Permission groups granted as a unit (group ids).
    pub groups: Vec<String>,
}

/// A named set of permissions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDef {
    pub id: String,
    pub name: String,
    pub permissions: Vec<String>,
}

/// Where an effective permission comes from. A permission can have several sources; the
/// console lists them all.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Listed on the role itself.
    Direct,
    /// Held by a permission group granted to the role itself.
    Group { group: String },
    /// Granted by an ancestor role (directly, or by one of its groups).
    Inherited { role: String, group: Option<String> },
    /// Required by another effective permission.
    Dependency { of: String },
}

/// An organization's roles, groups and dependencies (built-in ones included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessModel {
    pub roles: BTreeMap<String, RoleDef>,
    pub groups: BTreeMap<String, GroupDef>,
    /// permission → the permissions it requires (directly).
    pub requires: BTreeMap<String, Vec<String>>,
}

/// The built-in role rows as the code declares them (what `role` seeds, with their grants).
pub fn builtin_roles() -> Vec<RoleDef> {
    Role::ALL
        .iter()
        .map(|r| RoleDef {
            id: r.as_str().into(),
            name: r.as_str().into(),
            builtin: true,
            parents: Vec::new(),
            permissions: r.grants().iter().map(|p| p.as_str().to_string()).collect(),
            groups: Vec::new(),
        })
        .collect()
}

/// The built-in catalog's dependencies (`…:write` requires `…:read`).
pub fn builtin_dependencies() -> BTreeMap<String, Vec<String>> {
    Permission::ALL
        .iter()
        .filter(|p| !p.implied().is_empty())
        .map(|p| {
            (
                p.as_str().to_string(),
                p.implied().iter().map(|q| q.as_str().to_string()).collect(),
            )
        })
        .collect()
}

impl AccessModel {
    /// Only what the code declares: the built-in roles and dependencies.
    pub fn builtin() -> AccessModel {
        AccessModel {
            roles: builtin_roles()
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect(),
            groups: BTreeMap::new(),
            requires: builtin_dependencies(),
        }
    }

    /// The role and its ancestors, nearest first (the role itself first). Safe on a graph
    /// that holds a cycle (each role once).
    pub fn ancestors(&self, role: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([role.to_string()]);
        while let Some(r) = queue.pop_front() {
            if !seen.insert(r.clone()) {
                continue;
            }
            if let Some(def) = self.roles.get(&r) {
                queue.extend(def.parents.iter().cloned());
            }
            order.push(r);
        }
        order
    }

    /// The roles that inherit from any of `roles`, directly or through others, `roles`
    /// themselves included: every role a change to one of them changes too.
    /// One walk down the graph (parents to children), not one walk up per role; in id order.
    pub fn inheritors(&self, roles: &[&str]) -> Vec<String> {
        let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in self.roles.values() {
            for p in &r.parents {
                children.entry(p.as_str()).or_default().push(r.id.as_str());
            }
        }
        let mut found: BTreeSet<&str> = BTreeSet::new();
        let mut frontier: Vec<&str> = roles
            .iter()
            .filter_map(|r| self.roles.get_key_value(*r).map(|(id, _)| id.as_str()))
            .collect();
        while let Some(r) = frontier.pop() {
            if found.insert(r) {
                frontier.extend(children.get(r).into_iter().flatten().copied());
            }
        }
        found.into_iter().map(str::to_string).collect()
    }

    /// Every permission the roles grant together, each with all its sources (sorted), in name
    /// order. Unknown role ids grant nothing.
    pub fn effective(&self, roles: &[&str]) -> BTreeMap<String, BTreeSet<Source>> {
        let mut out: BTreeMap<String, BTreeSet<Source>> = BTreeMap::new();
        for role in roles {
            for ancestor in self.ancestors(role) {
                let Some(def) = self.roles.get(&ancestor) else {
                    continue;
                };
                let own = ancestor == *role;
                for p in &def.permissions {
                    let source = match own {
                        true => Source::Direct,
                        false => Source::Inherited {
                            role: ancestor.clone(),
                            group: None,
                        },
                    };
                    out.entry(p.clone()).or_default().insert(source);
                }
                for g in &def.groups {
                    let Some(group) = self.groups.get(g) else {
                        continue;
                    };
                    for p in &group.permissions {
                        let source = match own {
                            true => Source::Group { group: g.clone() },
                            false => Source::Inherited {
                                role: ancestor.clone(),
                                group: Some(g.clone()),
                            },
                        };
                        out.entry(p.clone()).or_default().insert(source);
                    }
                }
            }
        }
        // Dependencies, to any depth (each permission expanded once).
        let mut queue: VecDeque<String> = out.keys().cloned().collect();
        let mut expanded = BTreeSet::new();
        while let Some(p) = queue.pop_front() {
            if !expanded.insert(p.clone()) {
                continue;
            }
            for q in self.requires.get(&p).into_iter().flatten() {
                out.entry(q.clone())
                    .or_default()
                    .insert(Source::Dependency { of: p.clone() });
                queue.push_back(q.clone());
            }
        }
        out
    }

    /// The effective permission names of the roles.
    pub fn names(&self, roles: &[&str]) -> BTreeSet<String> {
        self.effective(roles).into_keys().collect()
    }

    /// These permissions and everything they require, to any depth (a cycle of dependencies
    /// ends where it started).
    pub fn with_requirements(&self, names: &[String]) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            if out.insert(n.clone()) {
                todo.extend(self.requires.get(&n).cloned().unwrap_or_default());
            }
        }
        out
    }

    /// The cycle that giving `role` these `parents` would make, as role ids from `role` back
    /// to itself; `None` when there is none.
    pub fn cycle_with(&self, role: &str, parents: &[String]) -> Option<Vec<String>> {
        // Depth-first from each new parent, looking for `role`; the path is the cycle.
        fn walk(
            model: &AccessModel,
            at: &str,
            target: &str,
            path: &mut Vec<String>,
            seen: &mut BTreeSet<String>,
        ) -> bool {
            path.push(at.to_string());
            if at == target {
                return true;
            }
            if seen.insert(at.to_string()) {
                if let Some(def) = model.roles.get(at) {
                    for p in &def.parents {
                        if walk(model, p, target, path, seen) {
                            return true;
                        }
                    }
                }
            }
            path.pop();
            false
        }
        for parent in parents {
            let mut path = vec![role.to_string()];
            let mut seen = BTreeSet::new();
            if walk(self, parent, role, &mut path, &mut seen) {
                return Some(path);
            }
        }
        None
    }

    /// The role's name (its id when unknown), for messages.
    pub fn role_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.roles.get(id).map_or(id, |r| r.name.as_str())
    }

    /// The permissions among `held` that require `permission` (directly), in name order:
    /// what removing `permission` from a role that lists them would break.
    pub fn dependents<'a>(&'a self, permission: &str, held: &'a [String]) -> Vec<&'a str> {
        held.iter()
            .filter(|h| {
                self.requires
                    .get(h.as_str())
                    .is_some_and(|r| r.iter().any(|q| q == permission))
            })
            .map(String::as_str)
            .collect()
    }
}

/// Whether `name` is a well-formed permission name: `resource:action`, lower-case letters,
/// digits, `-` and `_`, at most 64 characters in all.
pub fn valid_permission_name(name: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    };
    name.len() <= 64 && name.split_once(':').is_some_and(|(r, a)| ok(r) && ok(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: &str, parents: &[&str], permissions: &[&str], groups: &[&str]) -> RoleDef {
        RoleDef {
            id: id.into(),
            name: id.into(),
            builtin: false,
            parents: parents.iter().map(|s| s.to_string()).collect(),
            permissions: permissions.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn model(roles: Vec<RoleDef>) -> AccessModel {
        let mut m = AccessModel::builtin();
        for r in roles {
            m.roles.insert(r.id.clone(), r);
        }
        m
    }

    /// By definition: the roles of the model any of whose ancestors (itself included) is in
    /// `roles`.
    fn inheritors_by_definition(m: &AccessModel, roles: &[&str]) -> Vec<String> {
        m.roles
            .keys()
            .filter(|r| m.ancestors(r).iter().any(|a| roles.contains(&a.as_str())))
            .cloned()
            .collect()
    }

    #[test]
    fn inheritors_are_every_role_below_in_id_order() {
        // A diamond under `a`, a chain under `x`, and a role apart.
        let m = model(vec![
            role("a", &[], &[], &[]),
            role("b", &["a"], &[], &[]),
            role("c", &["a"], &[], &[]),
            role("d", &["b", "c"], &[], &[]),
            role("x", &["viewer"], &[], &[]),
            role("y", &["x"], &[], &[]),
            role("z", &[], &[], &[]),
        ]);
        assert_eq!(m.inheritors(&["a"]), ["a", "b", "c", "d"]);
        assert_eq!(m.inheritors(&["c", "y"]), ["c", "d", "y"]);
        assert_eq!(m.inheritors(&["nope"]), Vec::<String>::new());
        let viewer = m.inheritors(&["viewer"]);
        assert!(viewer.iter().any(|r| r == "y") && !viewer.iter().any(|r| r == "z"));
        assert_eq!(viewer, inheritors_by_definition(&m, &["viewer"]));
    }

    proptest::proptest! {
        /// On random graphs (parents drawn among earlier roles, so no cycle), the one walk down
        /// finds exactly the roles the definition names.
        #[test]
        fn inheritors_match_their_definition(
            parents in proptest::collection::vec(proptest::collection::vec(0usize..40, 0..4), 1..40),
            start in proptest::collection::vec(0usize..40, 0..4),
        ) {
            let ids: Vec<String> = (0..parents.len()).map(|i| format!("r{i:02}")).collect();
            let roles = parents.iter().enumerate().map(|(i, ps)| {
                let ps: Vec<&str> = ps.iter().filter(|p| **p < i).map(|p| ids[*p].as_str()).collect();
                role(&ids[i], &ps, &[], &[])
            });
            let m = model(roles.collect());
            let start: Vec<String> = start.iter().map(|i| format!("r{i:02}")).collect();
            let start: Vec<&str> = start.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(m.inheritors(&start), inheritors_by_definition(&m, &start));
        }
    }

    #[test]
    fn built_in_roles_resolve_to_what_the_enum_grants() {
        // Moving roles to data must not change a single built-in grant.
        let m = AccessModel::builtin();
        for r in Role::ALL {
            let from_enum: BTreeSet<String> = r
                .permissions()
                .iter()
                .map(|p| p.as_str().to_string())
                .collect();
            assert_eq!(m.names(&[r.as_str()]), from_enum, "{}", r.as_str());
        }
    }

    #[test]
    fn three_levels_of_inheritance_with_provenance() {
        let mut m = model(vec![
            role("support", &["viewer"], &["tickets:read"], &[]),
            role("lead", &["support"], &["tickets:write"], &["billing"]),
            role("manager", &["lead"], &[], &[]),
        ]);
        m.groups.insert(
            "billing".into(),
            GroupDef {
                id: "billing".into(),
                name: "billing".into(),
                permissions: vec!["invoices:read".into()],
            },
        );
        m.requires
            .insert("tickets:write".into(), vec!["tickets:read".into()]);
        let e = m.effective(&["manager"]);
        assert_eq!(
            e["tickets:read"],
            BTreeSet::from([
                Source::Inherited {
                    role: "support".into(),
                    group: None
                },
                Source::Dependency {
                    of: "tickets:write".into()
                },
            ])
        );
        assert_eq!(
            e["invoices:read"],
            BTreeSet::from([Source::Inherited {
                role: "lead".into(),
                group: Some("billing".into())
            }])
        );
        // From the built-in viewer, three levels up.
        assert!(e["keys:read"].contains(&Source::Inherited {
            role: "viewer".into(),
            group: None
        }));
        assert!(!e.contains_key("keys:write"));
        let lead = m.effective(&["lead"]);
        assert_eq!(
            lead["invoices:read"],
            BTreeSet::from([Source::Group {
                group: "billing".into()
            }])
        );
        assert!(lead["tickets:write"].contains(&Source::Direct));
    }

    #[test]
    fn dependencies_resolve_to_any_depth() {
        let mut m = model(vec![role("r", &[], &["a:write"], &[])]);
        m.requires.insert("a:write".into(), vec!["a:read".into()]);
        m.requires.insert("a:read".into(), vec!["b:read".into()]);
        let e = m.effective(&["r"]);
        assert_eq!(
            e["b:read"],
            BTreeSet::from([Source::Dependency {
                of: "a:read".into()
            }])
        );
        assert_eq!(e.len(), 3);
        assert_eq!(
            m.dependents("a:read", &["a:write".into(), "x:y".into()]),
            vec!["a:write"]
        );
    }

    #[test]
    fn cycles_are_found_and_named() {
        let m = model(vec![
            role("a", &[], &[], &[]),
            role("b", &["a"], &[], &[]),
            role("c", &["b"], &[], &[]),
        ]);
        assert_eq!(
            m.cycle_with("a", &["c".into()]),
            Some(vec!["a".into(), "c".into(), "b".into(), "a".into()])
        );
        assert_eq!(
            m.cycle_with("a", &["a".into()]),
            Some(vec!["a".into(), "a".into()])
        );
        assert_eq!(m.cycle_with("c", &["a".into(), "viewer".into()]), None);
        // A graph that already holds a cycle still resolves (each role once).
        let looped = model(vec![
            role("x", &["y"], &["p:q"], &[]),
            role("y", &["x"], &[], &[]),
        ]);
        assert!(looped.names(&["y"]).contains("p:q"));
    }

    #[test]
    fn unknown_roles_and_groups_grant_nothing() {
        let m = model(vec![role("r", &["gone"], &[], &["nogroup"])]);
        assert!(m.names(&["r"]).is_empty());
        assert!(m.names(&["nobody"]).is_empty());
    }

    #[test]
    fn permission_names() {
        for good in ["invoices:read", "a:b", "billing-v2:export_all"] {
            assert!(valid_permission_name(good), "{good}");
        }
        for bad in [
            "invoices",
            ":read",
            "a:",
            "A:b",
            "a:b:c",
            "a b:c",
            &"x".repeat(70),
        ] {
            assert!(!valid_permission_name(bad), "{bad}");
        }
    }

    #[test]
    fn requirements_are_added_to_any_depth_and_a_cycle_ends() {
        let mut m = AccessModel::default();
        m.requires
            .insert("invoices:refund".into(), vec!["invoices:write".into()]);
        m.requires
            .insert("invoices:write".into(), vec!["invoices:read".into()]);
        m.requires
            .insert("invoices:read".into(), vec!["invoices:refund".into()]);
        let all = m.with_requirements(&["invoices:refund".to_string()]);
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            ["invoices:read", "invoices:refund", "invoices:write"]
        );
        assert!(m
            .with_requirements(&["tickets:read".to_string()])
            .contains("tickets:read"));
        assert!(m.with_requirements(&[]).is_empty());
    }
}
