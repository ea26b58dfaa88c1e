//! Pure rules for API keys (server only): scopes and what they grant, IP allow-lists,
//! endpoint patterns, timestamps on the wire, and the validation of a new key's settings.

use super::format::Environment;
use super::{Access, Category, EndpointRule, NewKey, Scopes};
use crate::access::ssr::Grant;
use crate::access::{Permission, Permissions};
use crate::error::AppError;
use ipnet::IpNet;
use std::net::IpAddr;

// ---------------------------------------------------------------------------------------------
// Time on the wire.

pub use crate::ssr::db::rfc3339;

pub fn parse_rfc3339(field: &str, s: &str) -> Result<i64, AppError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            AppError::invalid(
                field,
                format!("{field} must be an RFC 3339 timestamp, e.g. 2027-01-31T12:00:00Z"),
            )
        })
}

/// An edit's or review's optional `version`: the key's `updated_at` (RFC 3339) as the caller
/// read it.
pub fn parse_version(version: Option<&str>) -> Result<Option<i64>, AppError> {
    version.map(|v| parse_rfc3339("version", v)).transpose()
}

// ---------------------------------------------------------------------------------------------
// Validation (pure).

/// The permissions a set of scopes amounts to.
pub fn scope_permissions(scopes: &Scopes) -> Permissions {
    Permission::ALL
        .iter()
        .copied()
        .filter(|p| scopes_allow(scopes, *p))
        .collect()
}

/// Whether the scopes grant `permission` (write implies read).
pub fn scopes_allow(scopes: &Scopes, permission: Permission) -> bool {
    let (resource, action) = permission.as_str().split_once(':').unwrap_or_default();
    match scopes.get(resource) {
        Some(Access::Write) => true,
        Some(Access::Read) => action == "read",
        _ => false,
    }
}

/// The checked settings of a key.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub name: String,
    pub description: String,
    pub environment: Environment,
    pub category: Category,
    pub scopes: Scopes,
    /// Dynamic permissions, sorted and without duplicates (existence and the caller's hold on
    /// each are checked against the database when the key is written).
    pub permissions: Vec<String>,
    pub endpoints: Vec<EndpointRule>,
    pub ip_allowlist: Vec<IpNet>,
    pub expires_at: Option<i64>,
    pub require_signature: bool,
    pub metadata: serde_json::Value,
}

/// A key's dynamic permissions, checked for shape: at most 50 `resource:action` names, none
/// of them built-in (those are scopes). Sorted, duplicates removed.
pub fn dynamic_permissions(names: &[String]) -> Result<Vec<String>, AppError> {
    if names.len() > 50 {
        return Err(AppError::invalid("permissions", "at most 50 permissions"));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let name = name.trim();
        if Permission::parse(name).is_some() {
            return Err(AppError::invalid(
                "permissions",
                format!("{name} is built in: grant it with scopes"),
            ));
        }
        if !crate::access::model::valid_permission_name(name) {
            return Err(AppError::invalid(
                "permissions",
                format!("not a permission name: {name:?} (resource:action, lower case)"),
            ));
        }
        out.push(name.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128). An IPv4-mapped
/// entry (`::ffff:203.0.113.9`, `::ffff:10.0.0.0/104`) is read as the IPv4 block it names:
/// clients' mapped addresses are checked as IPv4 ([`ip_allowed`]), so kept as IPv6 it would
/// never match.
pub fn parse_cidr(s: &str) -> Result<IpNet, AppError> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            AppError::invalid(
                "ip_allowlist",
                format!("not an IP address or CIDR block: {s:?}"),
            )
        })?;
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        _ => net,
    })
}

/// Whether `ip` is allowed by the list (empty = any address).
pub fn ip_allowed(list: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    list.is_empty() || list.iter().any(|net| net.contains(&ip))
}

const METHODS: &[&str] = &["*", "GET", "POST", "PUT", "PATCH", "DELETE"];

fn validate_endpoint(rule: &EndpointRule) -> Result<EndpointRule, AppError> {
    let method = rule.method.trim().to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(AppError::invalid(
            "endpoints",
            format!(
                "unknown method {:?}; use one of {}",
                rule.method,
                METHODS.join(", ")
            ),
        ));
    }
    let path = rule.path.trim();
    if !path.starts_with('/')
        || path.len() > 200
        || path.chars().any(|c| c.is_whitespace() || c == '?')
    {
        return Err(AppError::invalid(
            "endpoints",
            format!(
                "path pattern must start with / and hold no spaces or query: {:?}",
                rule.path
            ),
        ));
    }
    // `*` stands for a whole segment and `**` for the whole rest, so `**` must be the last
    // segment (anything after it would be silently ignored by the matcher) and neither may
    // share a segment with other characters.
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let ok = !segment.contains('*') || *segment == "*" || (*segment == "**" && last);
        if !ok {
            return Err(AppError::invalid(
                "endpoints",
                format!(
                    "in {:?}: * must be a whole segment, and ** only the last one",
                    rule.path
                ),
            ));
        }
    }
    Ok(EndpointRule {
        method,
        path: path.to_string(),
    })
}

/// Whether a request matches one rule: `*` is one segment, a trailing `/**` any rest.
pub fn endpoint_matches(rule: &EndpointRule, method: &str, path: &str) -> bool {
    // A request's segments are literal: even one spelled `*` or `**` is just a name.
    method_within(&rule.method, method) && walk(&rule.path, path, |_| true)
}

/// Whether every request `inner` matches, `outer` matches too (`*` covers one segment, a
/// trailing `/**` any rest; `**` is covered only by `**`).
pub fn endpoint_covers(outer: &EndpointRule, inner: &EndpointRule) -> bool {
    method_within(&outer.method, &inner.method) && walk(&outer.path, &inner.path, |n| n != "**")
}

fn method_within(rule: &str, method: &str) -> bool {
    rule == "*" || rule.eq_ignore_ascii_case(method)
}

/// The one walk behind both: `pattern`'s segments against `other`'s, where `*` takes one
/// segment `star_takes` accepts, a trailing `**` the rest, and anything else only itself.
fn walk(pattern: &str, other: &str, star_takes: impl Fn(&str) -> bool) -> bool {
    let mut pattern = pattern.trim_end_matches('/').split('/');
    let mut other = other.trim_end_matches('/').split('/');
    loop {
        match (pattern.next(), other.next()) {
            (Some("**"), _) => return true,
            (Some("*"), Some(o)) if star_takes(o) => {}
            (Some(p), Some(o)) if p == o => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl Settings {
    /// The restrictions the key will have (the authorization core's view).
    pub fn bounds(&self) -> crate::access::ssr::KeyBounds {
        crate::access::ssr::KeyBounds {
            expires_at: self.expires_at,
            ip_allowlist: self.ip_allowlist.clone(),
            endpoints: self.endpoints.clone(),
            require_signature: self.require_signature,
            test_only: self.environment == Environment::Test,
        }
    }
}

/// Checks a creation request against the creator's grant: a key never gets a permission its
/// creator does not hold (403 naming it), nor a resource its organization cannot hold. Made by
/// a key, it stays inside that key's restrictions (403), and inherits those the request leaves
/// out (expiry, IP allow-list, endpoint rules, signatures, the test environment).
pub fn validate_new(new: &NewKey, now: i64, grant: &Grant) -> Result<Settings, AppError> {
    let mut settings = validate_settings(new, now, grant)?;
    if let Some(maker) = grant.key_bounds() {
        if new.expires_at.is_none() {
            settings.expires_at = maker.expires_at;
        }
        if new.ip_allowlist.is_none() {
            settings.ip_allowlist = maker.ip_allowlist.clone();
        }
        if new.endpoints.is_none() {
            settings.endpoints = maker.endpoints.clone();
        }
        if new.require_signature.is_none() {
            settings.require_signature = maker.require_signature;
        }
        if new.environment.is_none() && maker.test_only {
            settings.environment = Environment::Test;
        }
    }
    grant.require_within(&settings.bounds())?;
    Ok(settings)
}

/// [`validate_new`] without the acting key's restrictions: a key's settings, validated for
/// shape and against the caller's permissions ([`super::lifecycle::update`] checks the
/// restrictions of the key as edited).
pub fn validate_settings(new: &NewKey, now: i64, grant: &Grant) -> Result<Settings, AppError> {
    let system_org = grant.in_system_org();
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "name must be 1 to 100 printable characters",
        ));
    }
    let description = new
        .description
        .clone()
        .unwrap_or_default()
        .trim()
        .to_string();
    if description.chars().count() > 1000 {
        return Err(AppError::invalid(
            "description",
            "description must be at most 1000 characters",
        ));
    }
    let environment = match new.environment.as_deref() {
        None => Environment::Live,
        Some(e) => Environment::parse(e)
            .ok_or_else(|| AppError::invalid("environment", "environment must be live or test"))?,
    };
    let category = match new.category.as_deref() {
        None if new.scopes.is_some() => Category::Custom,
        None => Category::Basic,
        Some(c) => Category::parse(c).ok_or_else(|| {
            AppError::invalid(
                "category",
                "category must be basic, read_only, admin or custom",
            )
        })?,
    };
    let scopes = match (category.preset(system_org), &new.scopes) {
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "scopes",
                "scopes come from the category; use category custom to set them",
            ))
        }
        (Some(preset), None) => preset,
        (None, Some(scopes)) => scopes.clone(),
        (None, None) => return Err(AppError::invalid("scopes", "a custom key needs scopes")),
    };
    let resources = crate::access::resources_in(system_org);
    for resource in scopes.keys() {
        if !resources.contains(&resource.as_str()) {
            return Err(AppError::invalid(
                "scopes",
                format!(
                    "unknown resource {resource:?}; known: {}",
                    resources.join(", ")
                ),
            ));
        }
    }
    let scopes: Scopes = scopes
        .into_iter()
        .filter(|(_, a)| *a != Access::None)
        .collect();
    grant.require_all(scope_permissions(&scopes))?;
    let endpoints = new.endpoints.clone().unwrap_or_default();
    if endpoints.len() > 50 {
        return Err(AppError::invalid("endpoints", "at most 50 endpoint rules"));
    }
    let endpoints = endpoints
        .iter()
        .map(validate_endpoint)
        .collect::<Result<Vec<_>, _>>()?;
    let ip_list = new.ip_allowlist.clone().unwrap_or_default();
    if ip_list.len() > 100 {
        return Err(AppError::invalid("ip_allowlist", "at most 100 entries"));
    }
    let ip_allowlist = ip_list
        .iter()
        .map(|s| parse_cidr(s))
        .collect::<Result<Vec<_>, _>>()?;
    let expires_at = match &new.expires_at {
        None => None,
        Some(s) => {
            let at = parse_rfc3339("expires_at", s)?;
            if at <= now {
                return Err(AppError::invalid(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(at)
        }
    };
    let metadata = new
        .metadata
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    if !metadata.is_object() || metadata.to_string().len() > 8192 {
        return Err(AppError::invalid(
            "metadata",
            "metadata must be a JSON object of at most 8 KiB",
        ));
    }
    let permissions = dynamic_permissions(new.permissions.as_deref().unwrap_or_default())?;
    Ok(Settings {
        name,
        description,
        environment,
        category,
        scopes,
        permissions,
        endpoints,
        ip_allowlist,
        expires_at,
        require_signature: new.require_signature.unwrap_or(false),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(method: &str, path: &str) -> EndpointRule {
        EndpointRule {
            method: method.into(),
            path: path.into(),
        }
    }

    /// A rule as the validator accepts it: segments of a small alphabet, `*` anywhere, `**`
    /// only last; any method of a few.
    fn any_rule() -> impl proptest::strategy::Strategy<Value = EndpointRule> {
        use proptest::prelude::*;
        (
            prop_oneof![Just("*"), Just("GET"), Just("POST")],
            proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*")], 0..4),
            any::<bool>(),
        )
            .prop_map(|(method, segments, rest)| {
                let mut path = format!("/{}", segments.join("/"));
                if rest {
                    path = format!("{}/**", path.trim_end_matches('/'));
                }
                rule(method, &path)
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Soundness of the check that keeps a key's keys inside its endpoint rules: whatever
        /// request the narrower rule lets through, the wider one does too, including requests
        /// whose segments are spelled `*` or `**`.
        #[test]
        fn a_covered_rule_lets_through_nothing_its_cover_refuses(
            outer in any_rule(),
            inner in any_rule(),
            method in proptest::prelude::prop_oneof![
                proptest::prelude::Just("GET"), proptest::prelude::Just("POST"), proptest::prelude::Just("DELETE")
            ],
            fill in proptest::collection::vec(
                proptest::prelude::prop_oneof![
                    proptest::prelude::Just("a"), proptest::prelude::Just("b"), proptest::prelude::Just("c"),
                    proptest::prelude::Just("*"), proptest::prelude::Just("**")
                ],
                8,
            ),
            tail in 0usize..3,
        ) {
            // A request the inner rule lets through, by construction: its method (any of a
            // few when it takes any), each `*` filled with a segment (spelled `*` or `**` at
            // times), a trailing `**` with a rest of up to two segments.
            let method = if inner.method == "*" { method } else { inner.method.as_str() };
            let mut fill = fill.into_iter();
            let mut segments = Vec::new();
            for segment in inner.path.trim_end_matches('/').split('/') {
                match segment {
                    "**" => {
                        segments.extend(fill.by_ref().take(tail));
                        break;
                    }
                    "*" => segments.push(fill.next().unwrap_or("a")),
                    literal => segments.push(literal),
                }
            }
            let path = segments.join("/");
            proptest::prop_assert!(endpoint_matches(&inner, method, &path), "{inner:?} {method} {path}");
            if endpoint_covers(&outer, &inner) {
                proptest::prop_assert!(
                    endpoint_matches(&outer, method, &path),
                    "{outer:?} covers {inner:?}, which lets {method} {path} through, but it does not"
                );
            }
        }
    }

    #[test]
    fn an_ipv4_mapped_entry_is_the_ipv4_block_it_names() {
        let list: Vec<IpNet> = ["::ffff:203.0.113.9", "::ffff:10.0.0.0/104", "2001:db8::/32"]
            .iter()
            .map(|s| parse_cidr(s).unwrap())
            .collect();
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["203.0.113.9/32", "10.0.0.0/8", "2001:db8::/32"]);
        for client in [
            "203.0.113.9",
            "::ffff:203.0.113.9",
            "10.1.2.3",
            "::ffff:10.1.2.3",
            "2001:db8::1",
        ] {
            assert!(ip_allowed(&list, client.parse().unwrap()), "{client}");
        }
        for client in ["203.0.113.10", "11.0.0.1", "2001:db9::1"] {
            assert!(!ip_allowed(&list, client.parse().unwrap()), "{client}");
        }
    }

    #[test]
    fn a_rule_covers_only_what_it_matches() {
        let covers =
            |a: (&str, &str), b: (&str, &str)| endpoint_covers(&rule(a.0, a.1), &rule(b.0, b.1));
        assert!(covers(("*", "/api/v1/**"), ("GET", "/api/v1/keys/*")));
        assert!(covers(
            ("GET", "/api/v1/keys/*"),
            ("get", "/api/v1/keys/key_1")
        ));
        assert!(covers(("GET", "/api/v1/keys/*"), ("GET", "/api/v1/keys/*")));
        assert!(!covers(
            ("GET", "/api/v1/keys/*"),
            ("POST", "/api/v1/keys/*")
        ));
        assert!(!covers(("GET", "/api/v1/keys/*"), ("*", "/api/v1/keys/*")));
        assert!(!covers(
            ("GET", "/api/v1/keys/*"),
            ("GET", "/api/v1/keys/**")
        ));
        assert!(!covers(("GET", "/api/v1/keys"), ("GET", "/api/v1/keys/*")));
        assert!(!covers(
            ("GET", "/api/v1/keys/key_1"),
            ("GET", "/api/v1/keys/*")
        ));
    }

    #[test]
    fn a_key_s_restrictions_hold_what_it_makes() {
        use crate::access::ssr::KeyBounds;
        let own = KeyBounds {
            expires_at: Some(1_000),
            ip_allowlist: vec!["10.0.0.0/8".parse().unwrap()],
            endpoints: vec![rule("GET", "/api/v1/**")],
            require_signature: true,
            test_only: true,
        };
        let inside = KeyBounds {
            expires_at: Some(999),
            ip_allowlist: vec!["10.1.0.0/16".parse().unwrap()],
            endpoints: vec![rule("GET", "/api/v1/keys")],
            require_signature: true,
            test_only: true,
        };
        assert_eq!(own.escape(&inside), None);
        assert_eq!(own.escape(&own), None);
        let escapes = [
            KeyBounds {
                expires_at: None,
                ..inside.clone()
            },
            KeyBounds {
                expires_at: Some(1_001),
                ..inside.clone()
            },
            KeyBounds {
                ip_allowlist: vec![],
                ..inside.clone()
            },
            KeyBounds {
                ip_allowlist: vec!["11.0.0.0/8".parse().unwrap()],
                ..inside.clone()
            },
            KeyBounds {
                endpoints: vec![],
                ..inside.clone()
            },
            KeyBounds {
                endpoints: vec![rule("POST", "/api/v1/keys")],
                ..inside.clone()
            },
            KeyBounds {
                require_signature: false,
                ..inside.clone()
            },
            KeyBounds {
                test_only: false,
                ..inside.clone()
            },
        ];
        for outside in escapes {
            assert!(own.escape(&outside).is_some(), "{outside:?} escaped");
        }
        // An unrestricted key bounds nothing.
        assert_eq!(KeyBounds::default().escape(&KeyBounds::default()), None);
        // A live key may make a test key.
        assert_eq!(KeyBounds::default().escape(&inside), None);
    }

    fn scopes(pairs: &[(&str, Access)]) -> Scopes {
        pairs.iter().map(|(r, a)| (r.to_string(), *a)).collect()
    }

    #[test]
    fn write_implies_read() {
        let s = scopes(&[
            ("keys", Access::Write),
            ("org", Access::Read),
            ("audit", Access::None),
        ]);
        assert!(scopes_allow(&s, Permission::KeysWrite));
        assert!(scopes_allow(&s, Permission::KeysRead));
        assert!(scopes_allow(&s, Permission::OrgRead));
        assert!(!scopes_allow(&s, Permission::OrgWrite));
        assert!(!scopes_allow(&s, Permission::AuditRead));
        assert_eq!(
            scope_permissions(&s).iter().collect::<Vec<_>>(),
            vec![
                Permission::OrgRead,
                Permission::KeysRead,
                Permission::KeysWrite
            ]
        );
    }

    #[test]
    fn cidr_matching() {
        let list = vec![
            parse_cidr("10.0.0.0/8").unwrap(),
            parse_cidr("2001:db8::/32").unwrap(),
            parse_cidr("192.0.2.7").unwrap(),
        ];
        assert!(ip_allowed(&list, "10.1.2.3".parse().unwrap()));
        assert!(!ip_allowed(&list, "11.0.0.1".parse().unwrap()));
        assert!(ip_allowed(&list, "2001:db8::1".parse().unwrap()));
        assert!(!ip_allowed(&list, "2001:db9::1".parse().unwrap()));
        assert!(ip_allowed(&list, "192.0.2.7".parse().unwrap()));
        assert!(!ip_allowed(&list, "192.0.2.8".parse().unwrap()));
        assert!(
            ip_allowed(&list, "::ffff:10.0.0.1".parse().unwrap()),
            "IPv4-mapped IPv6"
        );
        assert!(
            ip_allowed(&[], "203.0.113.1".parse().unwrap()),
            "empty list: any address"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("not an ip").is_err());
    }

    #[test]
    fn endpoint_patterns() {
        let rule = |m: &str, p: &str| EndpointRule {
            method: m.into(),
            path: p.into(),
        };
        assert!(endpoint_matches(
            &rule("GET", "/api/v1/keys"),
            "GET",
            "/api/v1/keys"
        ));
        assert!(!endpoint_matches(
            &rule("GET", "/api/v1/keys"),
            "POST",
            "/api/v1/keys"
        ));
        assert!(endpoint_matches(
            &rule("*", "/api/v1/keys/*"),
            "DELETE",
            "/api/v1/keys/key_1"
        ));
        assert!(!endpoint_matches(
            &rule("*", "/api/v1/keys/*"),
            "GET",
            "/api/v1/keys/key_1/history"
        ));
        assert!(endpoint_matches(
            &rule("GET", "/api/v1/**"),
            "GET",
            "/api/v1/keys/key_1/history"
        ));
        assert!(!endpoint_matches(
            &rule("GET", "/api/v1/keys"),
            "GET",
            "/api/v1/keysx"
        ));
    }

    #[test]
    fn double_star_only_last() {
        let rule = |p: &str| EndpointRule {
            method: "GET".into(),
            path: p.into(),
        };
        assert!(validate_endpoint(&rule("/api/v1/**")).is_ok());
        assert!(validate_endpoint(&rule("/api/v1/keys/*/history")).is_ok());
        for bad in [
            "/api/v1/keys/**/history",
            "/api/v1/key*",
            "/api/**x",
            "/**/a",
        ] {
            let e = validate_endpoint(&rule(bad)).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::InvalidInput, "{bad}");
        }
    }

    fn grant(org: &str, ceiling: &[Permission]) -> Grant {
        Grant {
            ceiling: ceiling.iter().copied().collect(),
            ..Grant::operator(org)
        }
    }

    #[test]
    fn instance_resources_only_in_the_system_org() {
        let now = 1_000;
        let new = |category: &str| NewKey {
            name: "k".into(),
            category: Some(category.into()),
            ..Default::default()
        };
        let org = Grant::operator("org_a");
        let admin = validate_new(&new("admin"), now, &org).unwrap();
        assert!(!admin.scopes.contains_key("users"), "{:?}", admin.scopes);
        let system = Grant::operator(crate::access::ssr::SYSTEM_ORG_ID);
        let admin = validate_new(&new("admin"), now, &system).unwrap();
        assert_eq!(admin.scopes.get("users"), Some(&Access::Write));
        let users = NewKey {
            name: "k".into(),
            scopes: Some(scopes(&[("users", Access::Read)])),
            ..Default::default()
        };
        assert_eq!(
            validate_new(&users, now, &org)
                .unwrap_err()
                .field
                .as_deref(),
            Some("scopes")
        );
    }

    #[test]
    fn validation() {
        let all = Grant::operator("org_a");
        let now = 1_000;
        let ok = validate_new(
            &NewKey {
                name: " ci ".into(),
                ..Default::default()
            },
            now,
            &all,
        )
        .unwrap();
        assert_eq!(ok.name, "ci");
        assert_eq!(ok.category, Category::Basic);
        assert_eq!(
            ok.scopes,
            scopes(&[("keys", Access::Write), ("org", Access::Read)])
        );

        let bad = |new: NewKey, field: &str| {
            let e = validate_new(&new, now, &all).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
        };
        bad(
            NewKey {
                name: "".into(),
                ..Default::default()
            },
            "name",
        );
        bad(
            NewKey {
                name: "k".into(),
                environment: Some("prod".into()),
                ..Default::default()
            },
            "environment",
        );
        bad(
            NewKey {
                name: "k".into(),
                category: Some("root".into()),
                ..Default::default()
            },
            "category",
        );
        bad(
            NewKey {
                name: "k".into(),
                category: Some("custom".into()),
                ..Default::default()
            },
            "scopes",
        );
        bad(
            NewKey {
                name: "k".into(),
                scopes: Some(scopes(&[("rockets", Access::Read)])),
                ..Default::default()
            },
            "scopes",
        );
        bad(
            NewKey {
                name: "k".into(),
                ip_allowlist: Some(vec!["10.0.0.0/99".into()]),
                ..Default::default()
            },
            "ip_allowlist",
        );
        bad(
            NewKey {
                name: "k".into(),
                expires_at: Some("tomorrow".into()),
                ..Default::default()
            },
            "expires_at",
        );
        bad(
            NewKey {
                name: "k".into(),
                expires_at: Some("1970-01-01T00:00:00Z".into()),
                ..Default::default()
            },
            "expires_at",
        );
        bad(
            NewKey {
                name: "k".into(),
                metadata: Some(serde_json::json!([1])),
                ..Default::default()
            },
            "metadata",
        );
        bad(
            NewKey {
                name: "k".into(),
                endpoints: Some(vec![EndpointRule {
                    method: "FETCH".into(),
                    path: "/x".into(),
                }]),
                ..Default::default()
            },
            "endpoints",
        );

        // A creator cannot hand out what they do not hold.
        let only_keys = grant("org_a", &[Permission::KeysRead, Permission::KeysWrite]);
        let e = validate_new(
            &NewKey {
                name: "k".into(),
                category: Some("admin".into()),
                ..Default::default()
            },
            now,
            &only_keys,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::Forbidden);
        assert_eq!(e.message, "missing permission: org:read");
    }
}
