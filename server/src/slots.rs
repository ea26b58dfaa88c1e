//! Slots counted per key: at most a number held at once for each key (a user's live feeds, an
//! organization's exports), each given back when its guard is dropped. A key holding none is
//! not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counted slots per key, `cap` each.
#[derive(Debug)]
pub struct PerKey {
    cap: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One slot of a key, counted until dropped.
#[derive(Debug)]
pub struct KeySlot {
    key: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl PerKey {
    pub fn new(cap: usize) -> PerKey {
        PerKey {
            cap,
            held: Arc::default(),
        }
    }

    /// A slot of `key`, or `None` when it holds `cap` already.
    pub fn take(&self, key: &str) -> Option<KeySlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key.to_string()).or_default();
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(KeySlot {
            key: key.to_string(),
            held: self.held.clone(),
        })
    }

    /// How many keys hold a slot now.
    pub fn keys(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or_default()
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}
