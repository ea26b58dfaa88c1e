//! The client's address, for IP allow-lists, sign-in allowances, the request log and "My
//! sessions".
//!
//! Directly exposed (the default), it is the socket peer: headers are never believed. Behind
//! reverse proxies, `KEYWARD_TRUSTED_PROXIES` names their networks: a request whose peer is
//! one of them is attributed to the rightmost `X-Forwarded-For` entry that is not (each proxy
//! appends the address it received from, so entries left of the first untrusted hop were
//! written by the client and prove nothing). An entry that does not read as an address makes
//! the client unknown.

use ipnet::IpNet;
use std::net::IpAddr;

/// The client of a request from `peer` with `headers`, believing only `trusted` proxies.
///
/// A forwarded-for entry that does not read as an address (`ip`, `ip:port`, `[v6]`,
/// `[v6]:port`), bytes that are not text included, makes the client unknown (`None`: a
/// non-empty allow-list refuses it), never the proxy that passed it on: otherwise one bad byte
/// would make a stranger look like our own network.
pub fn client_addr(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let mut client = peer?;
    if !is_trusted(client, trusted) {
        return Some(client);
    }
    // Every `X-Forwarded-For` line, in order, is one list; each entry is decoded on its own.
    let lines: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    for entry in lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|b| *b == b','))
    {
        client = hop(entry)?.to_canonical();
        if !is_trusted(client, trusted) {
            break;
        }
    }
    Some(client)
}

/// One forwarded-for entry: an address, with or without a port.
fn hop(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    if let Some(rest) = entry.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    let (v4, port) = entry.split_once(':')?;
    is_port(port)
        .then(|| v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4))
        .flatten()
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for line in lines {
            h.append("x-forwarded-for", line.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let spoofed = headers(&["203.0.113.9"]);
        // Nothing configured, or a peer that is no proxy of ours: the peer, whatever it says.
        assert_eq!(
            client_addr(ip("198.51.100.7"), &spoofed, &[]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(ip("198.51.100.7"), &spoofed, &trusted),
            ip("198.51.100.7")
        );
        // Through our proxy: the address it saw.
        assert_eq!(
            client_addr(ip("10.0.0.2"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        // The client's own entries left of the first untrusted hop prove nothing.
        let chain = headers(&["1.2.3.4, 203.0.113.9, 10.0.0.3"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &chain, &trusted),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        let lines = headers(&["1.2.3.4", "203.0.113.9", "10.0.0.3"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &lines, &trusted),
            ip("203.0.113.9")
        );
        // All trusted (an internal caller), or no header: the last hop seen.
        assert_eq!(
            client_addr(ip("10.0.0.2"), &headers(&["10.0.0.9"]), &trusted),
            ip("10.0.0.9")
        );
        assert_eq!(
            client_addr(ip("10.0.0.2"), &http::HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
        // Garbage makes the client unknown, never the proxy that passed it on; bytes that are
        // not text in one entry spoil only that entry.
        let garbage = headers(&["203.0.113.9, unknown"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &garbage, &trusted), None);
        let mut binary = http::HeaderMap::new();
        binary.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap(),
        );
        assert_eq!(
            client_addr(ip("10.0.0.2"), &binary, &trusted),
            ip("203.0.113.9")
        );
        binary.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        assert_eq!(client_addr(ip("10.0.0.2"), &binary, &trusted), None);
        // Ports, as some load balancers write them.
        for (entry, want) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            assert_eq!(
                client_addr(ip("10.0.0.2"), &headers(&[entry]), &trusted),
                ip(want),
                "{entry}"
            );
        }
        for bad in [
            "203.0.113.9:",
            "203.0.113.9:http",
            "[2001:db8::1",
            "[2001:db8::1]x",
        ] {
            assert_eq!(
                client_addr(ip("10.0.0.2"), &headers(&[bad]), &trusted),
                None,
                "{bad}"
            );
        }
        // IPv4-mapped IPv6 peers are their IPv4 selves.
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.2"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_addr(None, &spoofed, &trusted), None);
    }
}
