//! BLAKE3 tree primitives for bao-tree style verified streaming with chunk groups of
//! 16 KiB (bao-tree `BlockSize::from_chunk_log(4)`): chaining values (CVs) of subtrees,
//! parent merging, and a streaming hasher that produces the root hash together with the
//! pre-order outboard. README.md describes the format; `python.rs` holds the bindings.

use std::sync::Arc;

use blake3::hazmat::{
    max_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use rayon::prelude::*;

#[cfg(feature = "python")]
mod python;

/// A BLAKE3 chunk: the unit that chunk counters count.
pub const CHUNK_LEN: usize = 1024;
/// Chunks per leaf group (chunk_log 4).
pub const GROUP_CHUNKS: u64 = 16;
/// Bytes per leaf group, 16 KiB.
pub const GROUP_LEN: usize = CHUNK_LEN * GROUP_CHUNKS as usize;
/// One outboard entry: the left child's CV followed by the right child's CV.
pub type Pair = [u8; 64];

/// Why a (data, start_chunk, is_root) triple does not describe a BLAKE3 subtree.
pub fn subtree_error(len: usize, start_chunk: u64, is_root: bool) -> Option<String> {
    if is_root {
        return (start_chunk != 0).then(|| "a root subtree starts at chunk 0".to_owned());
    }
    if len == 0 {
        return Some("a non-root subtree is never empty".to_owned());
    }
    let Some(offset) = start_chunk.checked_mul(CHUNK_LEN as u64) else {
        return Some("start_chunk is too large".to_owned());
    };
    match max_subtree_len(offset) {
        Some(max) if len as u64 > max => Some(format!(
            "a subtree starting at chunk {start_chunk} holds at most {max} bytes, not {len}"
        )),
        _ => None,
    }
}

/// Non-root CV of the subtree made of `data` starting at chunk `start_chunk`.
/// The caller ensures `subtree_error(data.len(), start_chunk, false)` is `None`.
pub fn subtree_cv(data: &[u8], start_chunk: u64) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(start_chunk * CHUNK_LEN as u64);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// The CV of a subtree, or (is_root, then start_chunk is 0) the BLAKE3 hash of `data`.
pub fn subtree_hash(data: &[u8], start_chunk: u64, is_root: bool) -> [u8; 32] {
    if is_root {
        *blake3::hash(data).as_bytes()
    } else {
        subtree_cv(data, start_chunk)
    }
}

/// CV of the parent of two subtrees; the root hash if `is_root`.
pub fn parent_cv(left: &ChainingValue, right: &ChainingValue, is_root: bool) -> [u8; 32] {
    if is_root {
        *merge_subtrees_root(left, right, Mode::Hash).as_bytes()
    } else {
        merge_subtrees_non_root(left, right, Mode::Hash)
    }
}

/// Non-root CVs of the consecutive 16 KiB groups of `data` (the last may be short),
/// the first starting at chunk `start_chunk` (a multiple of 16), concatenated.
pub fn group_cvs(data: &[u8], start_chunk: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(GROUP_LEN) * 32);
    for (i, group) in data.chunks(GROUP_LEN).enumerate() {
        out.extend_from_slice(&subtree_cv(group, start_chunk + i as u64 * GROUP_CHUNKS));
    }
    out
}

fn pair(left: &ChainingValue, right: &ChainingValue) -> Pair {
    let mut p = [0u8; 64];
    p[..32].copy_from_slice(left);
    p[32..].copy_from_slice(right);
    p
}

/// Where the group hashing of large updates runs.
#[derive(Clone)]
pub enum Threads {
    /// The calling thread only.
    Current,
    /// A rayon pool (rayon's global one or a dedicated one).
    Pool(Option<Arc<rayon::ThreadPool>>),
}

/// Updates of at least this many whole groups are spread over the pool.
const PARALLEL_MIN_GROUPS: usize = 8;

/// Streaming hasher: BLAKE3 root hash plus bao-tree pre-order outboard (chunk_log 4).
///
/// Groups are hashed as soon as it is known that more data follows them (so none of them
/// can be the root); complete subtrees are merged eagerly, as BLAKE3 itself does, and each
/// merge records its (left, right) pair. Those merges happen in post-order; `finalize`
/// folds the right edge and rewrites the pairs in pre-order. Memory: 64 bytes per group.
pub struct OutboardHasher {
    /// The last group seen so far: 1..=GROUP_LEN bytes once any data was given.
    pending: Vec<u8>,
    /// Number of groups hashed, all known not to be the last.
    groups: u64,
    /// CVs of the complete subtrees not yet merged, one per set bit of `groups`.
    stack: Vec<ChainingValue>,
    /// Parent pairs of completed subtrees in post-order.
    post: Vec<Pair>,
    threads: Threads,
    /// Reused buffer for CVs computed in parallel.
    scratch: Vec<ChainingValue>,
}

impl Default for OutboardHasher {
    fn default() -> Self {
        Self::new(Threads::Current)
    }
}

impl OutboardHasher {
    pub fn new(threads: Threads) -> Self {
        Self {
            pending: Vec::with_capacity(GROUP_LEN),
            groups: 0,
            stack: Vec::new(),
            post: Vec::new(),
            threads,
            scratch: Vec::new(),
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.groups * GROUP_LEN as u64 + self.pending.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        if !self.pending.is_empty() {
            // Top up the pending group; once full and followed by more data, hash it.
            let take = (GROUP_LEN - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if data.is_empty() {
                return;
            }
            let cv = subtree_cv(&self.pending, self.groups * GROUP_CHUNKS);
            self.pending.clear();
            self.push(cv);
        }
        // Hash every whole group that has at least one byte after it; keep the rest.
        let whole = data.len().saturating_sub(1) / GROUP_LEN;
        let (body, tail) = data.split_at(whole * GROUP_LEN);
        self.hash_groups(body);
        self.pending.extend_from_slice(tail);
    }

    fn hash_groups(&mut self, body: &[u8]) {
        let first = self.groups * GROUP_CHUNKS;
        let pool = match &self.threads {
            Threads::Pool(pool) if body.len() >= PARALLEL_MIN_GROUPS * GROUP_LEN => pool,
            _ => {
                for group in body.chunks_exact(GROUP_LEN) {
                    let cv = subtree_cv(group, self.groups * GROUP_CHUNKS);
                    self.push(cv);
                }
                return;
            }
        };
        let mut cvs = std::mem::take(&mut self.scratch);
        let work = |cvs: &mut Vec<ChainingValue>| {
            body.par_chunks_exact(GROUP_LEN)
                .with_min_len(4)
                .enumerate()
                .map(|(i, group)| subtree_cv(group, first + i as u64 * GROUP_CHUNKS))
                .collect_into_vec(cvs)
        };
        match pool {
            Some(pool) => pool.install(|| work(&mut cvs)),
            None => work(&mut cvs),
        }
        for cv in cvs.drain(..) {
            self.push(cv);
        }
        self.scratch = cvs;
    }

    /// Add the CV of a group that is known not to be the last one.
    fn push(&mut self, mut cv: ChainingValue) {
        self.groups += 1;
        // Each trailing zero bit of the group count completes a subtree: merge it.
        for _ in 0..self.groups.trailing_zeros() {
            let left = self.stack.pop().expect("one stacked CV per set bit");
            self.post.push(pair(&left, &cv));
            cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
        }
        self.stack.push(cv);
    }

    /// (root hash, pre-order outboard) of everything so far; the hasher stays usable.
    pub fn finalize(&self) -> ([u8; 32], Vec<u8>) {
        if self.groups == 0 {
            // A single (possibly empty) group is the whole tree: no parents.
            return (*blake3::hash(&self.pending).as_bytes(), Vec::new());
        }
        // Fold the right edge: the last group with the stacked subtrees, right to left.
        // These are the last parents in post-order, the root last of all.
        let mut right = subtree_cv(&self.pending, self.groups * GROUP_CHUNKS);
        let mut edge = Vec::with_capacity(self.stack.len());
        for (i, left) in self.stack.iter().enumerate().rev() {
            edge.push(pair(left, &right));
            right = parent_cv(left, &right, i == 0);
        }
        let post_len = self.post.len();
        let at = |i: usize| {
            if i < post_len {
                &self.post[i]
            } else {
                &edge[i - post_len]
            }
        };
        let groups = self.groups + 1;
        let mut out = Vec::with_capacity((groups as usize - 1) * 64);
        pre_order(&at, 0, groups, &mut out);
        (right, out)
    }
}

/// Append, in pre-order, the pairs of the subtree of `groups` groups whose post-order
/// pairs start at index `first`. Post-order is left pairs, right pairs, own pair; the
/// left subtree holds the largest power of two of groups below `groups`.
fn pre_order<'a>(at: &impl Fn(usize) -> &'a Pair, first: usize, groups: u64, out: &mut Vec<u8>) {
    if groups < 2 {
        return;
    }
    let left = left_groups(groups);
    out.extend_from_slice(at(first + groups as usize - 2));
    pre_order(at, first, left, out);
    pre_order(at, first + left as usize - 1, groups - left, out);
}

/// Root hash and pre-order outboard of `data` in one go.
pub fn outboard(data: &[u8], threads: Threads) -> ([u8; 32], Vec<u8>) {
    let mut hasher = OutboardHasher::new(threads);
    hasher.update(data);
    hasher.finalize()
}

/// Number of bytes of the pre-order outboard for `size` bytes of data.
pub fn outboard_size(size: u64) -> u64 {
    (size.div_ceil(GROUP_LEN as u64).max(1) - 1) * 64
}

/// Groups under the left child of a node over `groups` (> 1) groups.
fn left_groups(groups: u64) -> u64 {
    1u64 << (63 - (groups - 1).leading_zeros())
}

/// Bytes of a wholly sent subtree of `length` data bytes as bao-tree encodes it: its pairs
/// and groups interleaved in pre-order.
pub fn subtree_encoded_len(length: usize) -> usize {
    (length.div_ceil(GROUP_LEN).max(1) - 1) * 64 + length
}

/// What does not fit in a wholly sent subtree.
#[derive(Debug, PartialEq, Eq)]
pub enum SubtreeError {
    /// The input is not as long as the subtree's pairs and groups.
    Length { expected: usize, got: usize },
    /// Pair `index` (pre-order, counted within the subtree) does not hash to its parent.
    Pair(usize),
    /// Group `index` (counted within the subtree) does not hash to its place.
    Group(usize),
}

impl std::fmt::Display for SubtreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Length { expected, got } => {
                write!(f, "{got} bytes where the subtree takes {expected}")
            }
            Self::Pair(i) => write!(f, "pair {i} of the subtree does not hash to its parent"),
            Self::Group(i) => write!(f, "group {i} of the subtree does not hash to its place"),
        }
    }
}

/// Reads a subtree's encoding in pre-order, counting pairs and groups.
struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
    pairs: usize,
    groups: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.input[self.pos..self.pos + n];
        self.pos += n;
        out
    }

    /// The next pair, checked against the CV its parent names.
    fn pair(
        &mut self,
        expected: &[u8; 32],
        is_root: bool,
    ) -> Result<([u8; 32], [u8; 32]), SubtreeError> {
        let pair = self.take(64);
        let left: [u8; 32] = pair[..32].try_into().expect("32 bytes");
        let right: [u8; 32] = pair[32..].try_into().expect("32 bytes");
        self.pairs += 1;
        if parent_cv(&left, &right, is_root) != *expected {
            return Err(SubtreeError::Pair(self.pairs - 1));
        }
        Ok((left, right))
    }
}

/// Check the bao-tree encoding of a wholly sent subtree (`encoded`: pairs and groups
/// interleaved in pre-order) against its CV `expected` (the BLAKE3 hash if `is_root`),
/// writing its data bytes to `out` (as long as the subtree's data). The subtree starts at
/// chunk `start_chunk`; the caller ensures `subtree_error(out.len(), start_chunk, is_root)`
/// is `None`. On error `out` holds no meaning.
pub fn decode_subtree(
    encoded: &[u8],
    expected: &[u8; 32],
    is_root: bool,
    start_chunk: u64,
    out: &mut [u8],
) -> Result<(), SubtreeError> {
    let wanted = subtree_encoded_len(out.len());
    if encoded.len() != wanted {
        return Err(SubtreeError::Length {
            expected: wanted,
            got: encoded.len(),
        });
    }
    let mut cursor = Cursor {
        input: encoded,
        pos: 0,
        pairs: 0,
        groups: 0,
    };
    decode_node(&mut cursor, out, start_chunk, expected, is_root)
}

fn decode_node(
    cursor: &mut Cursor<'_>,
    out: &mut [u8],
    start_chunk: u64,
    expected: &[u8; 32],
    is_root: bool,
) -> Result<(), SubtreeError> {
    let groups = out.len().div_ceil(GROUP_LEN).max(1) as u64;
    if groups == 1 {
        let data = cursor.take(out.len());
        cursor.groups += 1;
        if subtree_hash(data, start_chunk, is_root) != *expected {
            return Err(SubtreeError::Group(cursor.groups - 1));
        }
        out.copy_from_slice(data);
        return Ok(());
    }
    let (left, right) = cursor.pair(expected, is_root)?;
    let half = left_groups(groups);
    let (lo, hi) = out.split_at_mut(half as usize * GROUP_LEN);
    decode_node(cursor, lo, start_chunk, &left, false)?;
    decode_node(cursor, hi, start_chunk + half * GROUP_CHUNKS, &right, false)
}

/// Interleave a wholly sent subtree's pre-order `pairs` (its run of the outboard) with its
/// `data` as bao-tree encodes it, into `out` (`subtree_encoded_len(data.len())` bytes),
/// checking every pair top-down against `expected` (the BLAKE3 hash if `is_root`). The data
/// is not hashed: the caller has it verified.
pub fn encode_subtree(
    pairs: &[u8],
    data: &[u8],
    expected: &[u8; 32],
    is_root: bool,
    out: &mut [u8],
) -> Result<(), SubtreeError> {
    let wanted = subtree_encoded_len(data.len()) - data.len();
    if pairs.len() != wanted {
        return Err(SubtreeError::Length {
            expected: wanted,
            got: pairs.len(),
        });
    }
    assert_eq!(
        out.len(),
        pairs.len() + data.len(),
        "out is not the encoding's length"
    );
    let mut cursor = Cursor {
        input: pairs,
        pos: 0,
        pairs: 0,
        groups: 0,
    };
    let mut at = 0;
    encode_node(&mut cursor, data, out, &mut at, expected, is_root)
}

fn encode_node(
    cursor: &mut Cursor<'_>,
    data: &[u8],
    out: &mut [u8],
    at: &mut usize,
    expected: &[u8; 32],
    is_root: bool,
) -> Result<(), SubtreeError> {
    let groups = data.len().div_ceil(GROUP_LEN).max(1) as u64;
    if groups == 1 {
        out[*at..*at + data.len()].copy_from_slice(data);
        *at += data.len();
        return Ok(());
    }
    let (left, right) = cursor.pair(expected, is_root)?;
    out[*at..*at + 32].copy_from_slice(&left);
    out[*at + 32..*at + 64].copy_from_slice(&right);
    *at += 64;
    let (lo, hi) = data.split_at(left_groups(groups) as usize * GROUP_LEN);
    encode_node(cursor, lo, out, at, &left, false)?;
    encode_node(cursor, hi, out, at, &right, false)
}

#[cfg(test)]
mod tests;
