//! A set of byte ranges, kept sorted and coalesced.

use std::collections::BTreeMap;
use std::ops::Range;

/// A set of half-open byte ranges, stored sorted with touching ranges merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    // start -> end
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `range`, merging it with every range it overlaps or touches.
    pub fn insert(&mut self, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        let (mut start, mut end) = (range.start, range.end);
        // A range starting at or before `start` may overlap or touch us.
        if let Some((&s, &e)) = self.map.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
        }
        // Swallow every range starting inside start..=end.
        let inside: Vec<u64> = self.map.range(start..=end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some(e) = self.map.remove(&s) {
                end = end.max(e);
            }
        }
        self.map.insert(start, end);
    }

    /// The ranges in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }

    /// The ranges as a vector.
    #[must_use]
    pub fn to_vec(&self) -> Vec<Range<u64>> {
        self.iter().collect()
    }

    /// The total number of bytes covered.
    #[must_use]
    pub fn covered(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    /// True when no byte is covered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_insert_merges_overlapping_and_touching() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..25);
        assert_eq!(s.to_vec(), vec![10..25, 30..40]);
        s.insert(5..35);
        assert_eq!(s.to_vec(), vec![5..40]);
        s.insert(50..50);
        assert_eq!(s.covered(), 35);
    }

    #[test]
    fn test_insert_inside_existing_is_noop() {
        let mut s = RangeSet::new();
        s.insert(0..100);
        s.insert(10..20);
        assert_eq!(s.to_vec(), vec![0..100]);
    }
}
