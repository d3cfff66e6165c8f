//! A list stored in fixed-size blocks, for the scanned machines, networks, clusters and
//! volumes of a large es.xml.
//!
//! A `Vec` that grows by doubling copies its items into fresh memory at each step, so a list of
//! 100,000 machines touches about twice its final size; on this kind of machine the kernel's
//! zeroing of fresh pages was a large part of the parse. Blocks are never moved once
//! allocated, and the halves of a split scan are joined by handing over their blocks rather
//! than copying their items.

use std::ops::Index;

/// Items per block: large enough that the block list stays short, small enough that the last,
/// partly filled block wastes little. Tiny in unit tests, so that small files span several
/// blocks and the resolver's two runs of machines (split at a block) both get some.
const BLOCK_LEN: usize = if cfg!(test) { 8 } else { 4096 };

#[derive(Debug)]
pub(super) struct Blocks<T> {
    blocks: Vec<Vec<T>>,
    /// Index of the first item of each block (blocks may be partly filled after [`Blocks::append`]).
    firsts: Vec<usize>,
    len: usize,
}

impl<T> Default for Blocks<T> {
    fn default() -> Self {
        Blocks {
            blocks: Vec::new(),
            firsts: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Blocks<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, item: T) {
        let last_full = self.blocks.last().is_none_or(|b| b.len() == b.capacity());
        if last_full {
            self.blocks.push(Vec::with_capacity(BLOCK_LEN));
            self.firsts.push(self.len);
        }
        if let Some(last) = self.blocks.last_mut() {
            last.push(item);
            self.len += 1;
        }
    }

    /// Moves `other`'s items to the end of this list, block by block (nothing is copied).
    pub fn append(&mut self, other: Blocks<T>) {
        for block in other.blocks.into_iter().filter(|b| !b.is_empty()) {
            self.firsts.push(self.len);
            self.len += block.len();
            self.blocks.push(block);
        }
    }

    /// Splits at the first block boundary at or after item `at`: the head, the index of the
    /// tail's first item, and the tail.
    pub fn split_at_block(mut self, at: usize) -> (Blocks<T>, usize, Blocks<T>) {
        let block = self.firsts.partition_point(|&first| first < at);
        let tail_first = self.firsts.get(block).copied().unwrap_or(self.len);
        let mut tail = Blocks::default();
        tail.append(Blocks {
            blocks: self.blocks.split_off(block),
            firsts: Vec::new(),
            len: 0,
        });
        self.firsts.truncate(block);
        self.len = tail_first;
        (self, tail_first, tail)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.blocks.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.blocks.iter_mut().flatten()
    }

    /// The items into a `Vec` of exactly their number, converted by `f`.
    pub fn map_to_vec<U>(&self, f: impl FnMut(&T) -> U) -> Vec<U> {
        let mut out = Vec::with_capacity(self.len);
        out.extend(self.iter().map(f));
        out
    }
}

impl<T> IntoIterator for Blocks<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.into_iter().flatten()
    }
}

impl<T> Index<usize> for Blocks<T> {
    type Output = T;

    /// Panics when `i` is out of range, like a slice.
    fn index(&self, i: usize) -> &T {
        let block = self.firsts.partition_point(|&first| first <= i) - 1;
        &self.blocks[block][i - self.firsts[block]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_appends_and_indexes_across_partial_blocks() {
        let mut a = Blocks::default();
        for i in 0..BLOCK_LEN + 3 {
            a.push(i);
        }
        let mut b = Blocks::default();
        for i in 0..5 {
            b.push(BLOCK_LEN + 3 + i);
        }
        a.append(b);
        a.append(Blocks::default());
        a.push(BLOCK_LEN + 8);
        assert_eq!(a.len(), BLOCK_LEN + 9);
        for i in 0..a.len() {
            assert_eq!(a[i], i);
        }
        assert!(a.iter().copied().eq(0..BLOCK_LEN + 9));
        assert_eq!(a.map_to_vec(|i| i * 2)[BLOCK_LEN + 4], 2 * (BLOCK_LEN + 4));
        // Blocks: [0, B), [B, B + 3), then b's block [B + 3, B + 9) with the last push.
        let (head, tail_first, tail) = a.split_at_block(BLOCK_LEN + 1);
        let split = BLOCK_LEN + 3;
        assert_eq!((head.len(), tail_first, tail.len()), (split, split, 6));
        assert_eq!(tail[4], split + 4);
        assert!(head.into_iter().chain(tail).eq(0..BLOCK_LEN + 9));
    }
}
