//! Per-client allowances for unauthenticated work that costs us (sign-in and sign-up each
//! hash a password): a GCRA limiter per client address, in memory.
//!
//! GCRA ("generic cell rate algorithm") keeps one number per client, its theoretical arrival
//! time: a client may make `per_minute` attempts at once, then one every `60 / per_minute`
//! seconds. IPv6 clients are counted per /64, the block one subscriber usually holds, so that
//! walking through one's own addresses does not multiply the allowance.
//!
//! The table is bounded: past [`MAX_CLIENTS`] entries, those whose allowance has fully refilled
//! (they carry no information) are dropped; if every entry is still busy, new clients are
//! refused until some refill, rather than letting memory grow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Most clients tracked at once.
pub const MAX_CLIENTS: usize = 100_000;

/// An allowance of attempts per client per minute.
#[derive(Debug)]
pub struct ClientLimiter {
    per_minute: u32,
    /// Client → theoretical arrival time (ms).
    tat: Mutex<HashMap<IpAddr, i64>>,
}

impl ClientLimiter {
    pub fn new(per_minute: u32) -> ClientLimiter {
        ClientLimiter {
            per_minute: per_minute.max(1),
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `client` at `now_ms`: `Ok` when allowed, `Err(seconds)` to wait
    /// otherwise. Clients without a known address share one allowance.
    pub fn check(&self, client: Option<IpAddr>, now_ms: i64) -> Result<(), u64> {
        let client = client.map_or(IpAddr::from([0u8; 4]), bucket);
        let interval = 60_000 / i64::from(self.per_minute);
        // A full allowance may be spent at once: `per_minute` attempts fit in the tolerance.
        let tolerance = interval * (i64::from(self.per_minute) - 1);
        let Ok(mut table) = self.tat.lock() else {
            return Err(1);
        };
        if table.len() >= MAX_CLIENTS && !table.contains_key(&client) {
            table.retain(|_, tat| *tat > now_ms);
            if table.len() >= MAX_CLIENTS {
                return Err(((interval + 999) / 1000) as u64);
            }
        }
        let tat = table.get(&client).copied().unwrap_or(now_ms).max(now_ms);
        if tat - now_ms > tolerance {
            let wait_ms = tat - now_ms - tolerance;
            return Err(((wait_ms + 999) / 1000) as u64);
        }
        table.insert(client, tat + interval);
        Ok(())
    }
}

/// The unit a client is counted in: its IPv4 address, or its IPv6 /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn burst_then_steady_rate() {
        let l = ClientLimiter::new(6); // one every 10 s, 6 at once
        for _ in 0..6 {
            assert_eq!(l.check(ip("192.0.2.1"), 0), Ok(()));
        }
        assert_eq!(l.check(ip("192.0.2.1"), 0), Err(10));
        assert_eq!(l.check(ip("192.0.2.1"), 9_000), Err(1));
        assert_eq!(l.check(ip("192.0.2.1"), 10_000), Ok(()));
        assert!(l.check(ip("192.0.2.1"), 10_000).is_err());
        // Another client is not affected.
        assert_eq!(l.check(ip("192.0.2.2"), 10_000), Ok(()));
        // After a quiet minute the whole allowance is back.
        for _ in 0..6 {
            assert_eq!(l.check(ip("192.0.2.1"), 80_000), Ok(()));
        }
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = ClientLimiter::new(1);
        assert_eq!(l.check(ip("2001:db8:1:2::1"), 0), Ok(()));
        assert!(l.check(ip("2001:db8:1:2::ffff"), 0).is_err());
        assert_eq!(l.check(ip("2001:db8:1:3::1"), 0), Ok(()));
        assert_eq!(l.check(ip("::ffff:192.0.2.9"), 0), Ok(()));
        assert!(l.check(ip("192.0.2.9"), 0).is_err(), "mapped = plain IPv4");
    }
}
