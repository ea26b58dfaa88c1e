//! The client's address, for IP allow-lists, sign-in allowances, the request log and "My
//! sessions".
//!
//! Directly exposed (the default), it is the socket peer: headers are never believed. Behind
//! reverse proxies, `KEYWARD_TRUSTED_PROXIES` names their networks: a request whose peer is
//! one of them is attributed to the rightmost `X-Forwarded-For` entry that is not (each proxy
//! appends the address it received from, so entries left of the first untrusted hop were
//! written by the client and prove nothing).

use ipnet::IpNet;
use std::net::IpAddr;

/// The client of a request from `peer` with `headers`, believing only `trusted` proxies.
///
/// A forwarded-for entry that does not read as an address ends the walk at the proxy that
/// wrote it: the client is then that proxy, never a name the client chose.
pub fn client_addr(
    peer: Option<IpAddr>,
    headers: &http::HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let mut client = peer?;
    if !is_trusted(client, trusted) {
        return Some(client);
    }
    // Every `X-Forwarded-For` line, in order, is one list.
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(',')) {
        match entry.trim().parse::<IpAddr>() {
            Ok(hop) => {
                client = hop.to_canonical();
                if !is_trusted(client, trusted) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
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
        // Garbage ends the walk at the proxy that passed it on.
        let garbage = headers(&["203.0.113.9, unknown"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &garbage, &trusted),
            ip("10.0.0.2")
        );
        // IPv4-mapped IPv6 peers are their IPv4 selves.
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.2"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_addr(None, &spoofed, &trusted), None);
    }
}
