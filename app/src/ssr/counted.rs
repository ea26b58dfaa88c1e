//! Holders counted per key: a user's live feeds, an organization's exports, the reports that
//! hold or wait for an organization's raw-log turn. Each holder is counted until its guard is
//! dropped, whichever way that happens; the last one out removes the key, so a key no one
//! holds is not kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Held<V> = Arc<Mutex<HashMap<String, (V, usize)>>>;

/// Holders per key, each key with a value its holders share (`()` for a plain count).
#[derive(Debug)]
pub struct Counted<V = ()> {
    held: Held<V>,
}

impl<V> Default for Counted<V> {
    fn default() -> Counted<V> {
        Counted {
            held: Arc::default(),
        }
    }
}

/// One holder of a key, counted until dropped; [`Holder::value`] is the key's shared value.
#[derive(Debug)]
pub struct Holder<V> {
    key: String,
    value: V,
    held: Held<V>,
}

impl<V: Clone> Counted<V> {
    /// Counts a holder of `key`; the key's value is made by `init` when it has no holder.
    pub fn enter(&self, key: &str, init: impl FnOnce() -> V) -> Holder<V> {
        self.enter_within(key, usize::MAX, init)
            .unwrap_or_else(|| unreachable!("no key has usize::MAX holders"))
    }

    /// [`Counted::enter`], unless `cap` holders hold `key` already (`None`).
    pub fn enter_within(
        &self,
        key: &str,
        cap: usize,
        init: impl FnOnce() -> V,
    ) -> Option<Holder<V>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (value, n) = held.entry(key.to_string()).or_insert_with(|| (init(), 0));
        if *n >= cap {
            if *n == 0 {
                held.remove(key);
            }
            return None;
        }
        *n += 1;
        Some(Holder {
            key: key.to_string(),
            value: value.clone(),
            held: self.held.clone(),
        })
    }
}

impl<V> Counted<V> {
    /// How many keys have a holder now.
    pub fn keys(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or_default()
    }
}

impl<V> Holder<V> {
    pub fn value(&self) -> &V {
        &self.value
    }
}

impl<V> Drop for Holder<V> {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// At most `cap` holders per key: [`Counted`] with a plain count.
#[derive(Debug)]
pub struct PerKey {
    cap: usize,
    counted: Counted,
}

impl PerKey {
    pub fn new(cap: usize) -> PerKey {
        PerKey {
            cap,
            counted: Counted::default(),
        }
    }

    /// A slot of `key`, or `None` when it holds `cap` already.
    pub fn take(&self, key: &str) -> Option<Holder<()>> {
        self.counted.enter_within(key, self.cap, || ())
    }

    /// How many keys hold a slot now.
    pub fn keys(&self) -> usize {
        self.counted.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_cap_and_is_forgotten_when_its_last_holder_leaves() {
        let slots = PerKey::new(2);
        let a = slots.take("a").expect("first");
        let b = slots.take("a").expect("second");
        assert!(
            slots.take("a").is_none(),
            "a third holder got past a cap of two"
        );
        let other = slots.take("b").expect("another key has its own cap");
        assert_eq!(slots.keys(), 2);
        drop(a);
        let c = slots.take("a").expect("a slot given back is taken again");
        drop((b, c, other));
        assert_eq!(slots.keys(), 0, "keys no one holds are kept");
    }

    #[test]
    fn holders_share_their_key_s_value_until_the_last_one_leaves() {
        let counted: Counted<std::sync::Arc<u8>> = Counted::default();
        let made = std::cell::Cell::new(0);
        let make = |v| {
            made.set(made.get() + 1);
            std::sync::Arc::new(v)
        };
        let a = counted.enter("k", || make(1));
        let b = counted.enter("k", || make(2));
        assert!(std::sync::Arc::ptr_eq(a.value(), b.value()));
        assert_eq!(made.get(), 1);
        drop((a, b));
        assert_eq!(counted.keys(), 0);
        let c = counted.enter("k", || make(3));
        assert_eq!(**c.value(), 3, "a forgotten key's value came back");
    }

    #[test]
    fn a_refused_key_is_not_kept() {
        let none = PerKey::new(0);
        assert!(none.take("a").is_none());
        assert_eq!(none.keys(), 0);
    }
}
