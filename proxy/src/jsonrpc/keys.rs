//! Duplicate-key detection for the objects the gateway routes on. Envelopes have a handful of
//! keys, so a linear scan over a small inline array costs nothing; a hostile object with
//! thousands of keys moves to a hash set (SipHash with a random key, so it cannot be flooded)
//! instead of going quadratic.

use std::collections::HashSet;

const INLINE: usize = 8;

/// The raw keys seen so far in one object.
pub(super) struct KeySet<'a> {
    inline: [&'a [u8]; INLINE],
    len: usize,
    /// Created only past `INLINE` keys: seeding a `RandomState` costs more than a small scan.
    spill: Option<HashSet<&'a [u8]>>,
}

impl<'a> KeySet<'a> {
    pub fn new() -> Self {
        KeySet {
            inline: [&[]; INLINE],
            len: 0,
            spill: None,
        }
    }

    /// Records `key`; returns false if it was already there.
    pub fn insert(&mut self, key: &'a [u8]) -> bool {
        let seen = self.inline.get(..self.len).unwrap_or_default();
        if seen.contains(&key) {
            return false;
        }
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = key;
            self.len += 1;
            return true;
        }
        self.spill.get_or_insert_with(HashSet::new).insert(key)
    }
}
