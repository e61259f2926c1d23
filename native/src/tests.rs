//! Checks against the `bao-tree` crate: the outboard is byte-identical, and the range
//! encoding README.md describes (re-implemented here from our primitives) is byte-identical
//! to `bao_tree::io::sync::encode_ranges_validated`.

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::encode_ranges_validated;
use bao_tree::{BlockSize, ChunkNum, ChunkRanges};

use super::*;

const BLOCK: BlockSize = BlockSize::from_chunk_log(4);
const MIB: usize = 1 << 20;
const SIZES: &[usize] = &[
    0,
    1,
    1023,
    1024,
    1025,
    16383,
    16384,
    16385,
    2 * GROUP_LEN,
    3 * GROUP_LEN - 1,
    5 * GROUP_LEN + 1000,
    7 * GROUP_LEN + 1,
    100_000,
    MIB + 1,
    3 * MIB + 12_345,
];

/// Deterministic pseudo-random bytes (xorshift64*).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn reference(data: &[u8]) -> PreOrderMemOutboard {
    PreOrderMemOutboard::create(data, BLOCK)
}

#[test]
fn outboard_matches_bao_tree() {
    for &size in SIZES {
        let d = data(size, size as u64);
        let expected = reference(&d);
        let (root, ob) = outboard(&d, Threads::Current);
        assert_eq!(root, *blake3::hash(&d).as_bytes(), "root, size {size}");
        assert_eq!(
            root,
            *expected.root.as_bytes(),
            "bao-tree root, size {size}"
        );
        assert_eq!(
            ob.len() as u64,
            outboard_size(size as u64),
            "length, size {size}"
        );
        assert!(ob == expected.data, "outboard differs, size {size}");
    }
}

#[test]
fn streaming_and_threads_agree() {
    let d = data(3 * MIB + 12_345, 7);
    let whole = outboard(&d, Threads::Current);
    assert_eq!(whole, outboard(&d, Threads::Pool(None)));
    for step in [
        1usize,
        1000,
        GROUP_LEN - 1,
        GROUP_LEN,
        GROUP_LEN + 1,
        200_001,
        MIB,
    ] {
        let mut h = OutboardHasher::new(Threads::Pool(None));
        // a small step is only tried on the first 100 KB, then the rest at once
        let split = if step < 1000 { 100_000 } else { d.len() };
        for piece in d[..split].chunks(step) {
            h.update(piece);
        }
        h.update(&d[split..]);
        assert_eq!(h.len(), d.len() as u64);
        assert_eq!(h.finalize(), whole, "step {step}");
    }
}

#[test]
fn primitives_rebuild_the_root() {
    let d = data(5 * GROUP_LEN + 1000, 3);
    let (root, ob) = outboard(&d, Threads::Current);
    // The tree: left = groups 0..4, right = groups 4..6; the first pair is the root's.
    let left: [u8; 32] = ob[..32].try_into().unwrap();
    let right: [u8; 32] = ob[32..64].try_into().unwrap();
    assert_eq!(parent_cv(&left, &right, true), root);
    assert_eq!(subtree_hash(&d[..4 * GROUP_LEN], 0, false), left);
    assert_eq!(subtree_hash(&d[4 * GROUP_LEN..], 64, false), right);
    let cvs = group_cvs(&d, 0);
    assert_eq!(cvs.len(), 6 * 32);
    assert_eq!(&cvs[5 * 32..], &subtree_cv(&d[5 * GROUP_LEN..], 80));
    assert!(subtree_error(0, 16, false).is_some());
    assert!(subtree_error(GROUP_LEN + 1, 16, false).is_some());
    assert!(subtree_error(GROUP_LEN, 16, false).is_none());
    assert!(subtree_error(10, 16, true).is_some());
}

// ---- the range encoding as README.md states it ----

/// Chunk ranges `[a, b)`, sorted and disjoint; `b == u64::MAX` is open-ended.
type Query = Vec<(u64, u64)>;

/// README: chunks at or past the last one stand for the last chunk.
fn normalize(query: &Query, size: u64) -> Query {
    let last = size.div_ceil(CHUNK_LEN as u64).max(1) - 1;
    let mut out: Query = Vec::new();
    for &(a, b) in query {
        let (a, b) = (a.min(last), b.min(last + 1));
        if a < b {
            match out.last_mut() {
                Some(prev) if prev.1 >= a => prev.1 = prev.1.max(b),
                _ => out.push((a, b)),
            }
        }
    }
    out
}

fn touches(q: &Query, s: u64, e: u64) -> bool {
    q.iter().any(|&(a, b)| a < e && s < b)
}

fn covers(q: &Query, s: u64, e: u64) -> bool {
    q.iter().any(|&(a, b)| a <= s && e <= b)
}

/// Emit the node of `len` bytes at byte `start`; return its CV (or root hash).
fn encode_node(
    d: &[u8],
    start: usize,
    len: usize,
    is_root: bool,
    q: &Query,
    out: &mut Vec<u8>,
) -> [u8; 32] {
    let part = &d[start..start + len];
    let (s, e) = (
        (start / CHUNK_LEN) as u64,
        (start + len.max(1)).div_ceil(CHUNK_LEN) as u64,
    );
    let hash = subtree_hash(part, s, is_root);
    if !touches(q, s, e) {
        return hash;
    }
    // Whole leaf groups, or whole chunk subtrees inside a partially wanted group, and
    // single chunks are sent as plain data.
    if len <= CHUNK_LEN || (len <= GROUP_LEN && covers(q, s, e)) {
        out.extend_from_slice(part);
        return hash;
    }
    let at = out.len();
    out.extend_from_slice(&[0; 64]);
    let left_len = blake3::hazmat::left_subtree_len(len as u64) as usize;
    let l = encode_node(d, start, left_len, false, q, out);
    let r = encode_node(d, start + left_len, len - left_len, false, q, out);
    out[at..at + 32].copy_from_slice(&l);
    out[at + 32..at + 64].copy_from_slice(&r);
    hash
}

fn chunk_ranges(q: &Query) -> ChunkRanges {
    let mut r = ChunkRanges::empty();
    for &(a, b) in q {
        r |= if b == u64::MAX {
            ChunkRanges::from(ChunkNum(a)..)
        } else {
            ChunkRanges::from(ChunkNum(a)..ChunkNum(b))
        };
    }
    r
}

#[test]
fn range_encoding_matches_bao_tree() {
    let mut seed = 1u64;
    let mut rand = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for &size in SIZES.iter().filter(|&&s| s <= MIB + 1) {
        let d = data(size, size as u64 + 11);
        let ob = reference(&d);
        let chunks = size.div_ceil(CHUNK_LEN).max(1) as u64;
        let mut queries: Vec<Query> = vec![
            vec![(0, u64::MAX)],
            vec![(0, chunks)],
            vec![(0, 1)],
            vec![(chunks - 1, chunks)],
            vec![(chunks + 5, u64::MAX)],
            vec![(3, 17), (40, 41), (70, 200)],
        ];
        for _ in 0..40 {
            let mut q = Query::new();
            let mut at = 0;
            for _ in 0..1 + rand(3) {
                let a = at + rand(chunks + 3);
                let b = a + 1 + rand(40);
                q.push((a, if rand(6) == 0 { u64::MAX } else { b }));
                if q.last().unwrap().1 == u64::MAX {
                    break;
                }
                at = b + 1;
            }
            queries.push(q);
        }
        for q in queries {
            let mut expected = Vec::new();
            encode_ranges_validated(&d[..], &ob, &chunk_ranges(&q), &mut expected).unwrap();
            if q == vec![(0, u64::MAX)] {
                // everything: all pairs and all data
                assert_eq!(
                    expected.len() as u64,
                    outboard_size(size as u64) + size as u64
                );
            }
            let mut ours = Vec::new();
            encode_node(&d, 0, size, true, &normalize(&q, size as u64), &mut ours);
            assert!(ours == expected, "size {size}, query {q:?}");
        }
    }
    // Worked example from README.md: chunk 0 of 1 MiB + 1 byte (65 groups) is 7 group
    // level pairs (root, then down the 64-group left subtree), 4 chunk level pairs inside
    // group 0, then the 1024 bytes of chunk 0.
    let d = data(MIB + 1, 5);
    let mut enc = Vec::new();
    encode_ranges_validated(
        &d[..],
        reference(&d),
        &chunk_ranges(&vec![(0, 1)]),
        &mut enc,
    )
    .unwrap();
    assert_eq!(enc.len(), 11 * 64 + 1024);
    assert_eq!(&enc[11 * 64..], &d[..1024]);
}

// ---- vectors shared with the Python encoder and decoder (castore/bao_encode.py) ----

/// Test data both sides can make: the BLAKE3 XOF of the seed's 8 little-endian bytes.
fn xof(len: usize, seed: u64) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    let mut out = vec![0; len];
    hasher.finalize_xof().fill(&mut out);
    out
}

/// `tests/encoded_ranges.txt`: one case a line, `size seed query length blake3-hex`, the
/// query as inclusive chunk ranges (`A-B`, `A`, `A-` open) or `all`.
const VECTORS: &str = include_str!("../tests/encoded_ranges.txt");

fn parse_query(text: &str) -> ChunkRanges {
    if text == "all" {
        return ChunkRanges::all();
    }
    let mut r = ChunkRanges::empty();
    for part in text.split(',') {
        r |= match part.split_once('-') {
            None => {
                let a: u64 = part.parse().unwrap();
                ChunkRanges::from(ChunkNum(a)..ChunkNum(a + 1))
            }
            Some((a, "")) => ChunkRanges::from(ChunkNum(a.parse().unwrap())..),
            Some((a, b)) => ChunkRanges::from(
                ChunkNum(a.parse().unwrap())..ChunkNum(b.parse::<u64>().unwrap() + 1),
            ),
        };
    }
    r
}

fn encoded(size: usize, seed: u64, query: &str) -> Vec<u8> {
    let d = xof(size, seed);
    let mut out = Vec::new();
    encode_ranges_validated(&d[..], reference(&d), &parse_query(query), &mut out).unwrap();
    out
}

/// `PYTVIX_BAO_PRINT_VECTORS=1 cargo test -q --manifest-path native/Cargo.toml
/// print_vectors -- --nocapture` prints the file's lines.
#[test]
fn print_vectors() {
    if std::env::var_os("PYTVIX_BAO_PRINT_VECTORS").is_none() {
        return;
    }
    let queries = [
        "all", "0", "0-15", "15-16", "16-31", "5-", "3-17,40,70-200", "1025-", "64-127,1024",
        "1000000-", "1-2,4,8-9,63-64",
    ];
    let sizes = [
        0usize, 1, 1023, 1024, 1025, 16383, 16384, 16385, 32768, 49151, 5 * GROUP_LEN + 1000,
        100_000, MIB + 1, 3 * MIB + 12_345,
    ];
    for (i, &size) in sizes.iter().enumerate() {
        for q in queries {
            let enc = encoded(size, i as u64, q);
            println!("{size} {i} {q} {} {}", enc.len(), blake3::hash(&enc).to_hex());
        }
    }
}

#[test]
fn encoded_range_vectors() {
    let mut cases = 0;
    for line in VECTORS.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        let enc = encoded(f[0].parse().unwrap(), f[1].parse().unwrap(), f[2]);
        assert_eq!(enc.len(), f[3].parse::<usize>().unwrap(), "{line}");
        assert_eq!(blake3::hash(&enc).to_hex().as_str(), f[4], "{line}");
        cases += 1;
    }
    assert!(cases > 100);
}

// ---- wholly sent subtrees (the BULK items of castore/bao_plan.py) ----

#[test]
fn whole_blob_subtree_is_bao_tree_encoding() {
    for &size in SIZES.iter().filter(|&&s| s > GROUP_LEN) {
        let d = data(size, 3);
        let (root, ob) = outboard(&d, Threads::Current);
        let mut enc = vec![0; subtree_encoded_len(size)];
        encode_subtree(&ob, &d, &root, true, &mut enc).unwrap();
        let mut reference_stream = Vec::new();
        encode_ranges_validated(
            &d[..],
            reference(&d),
            &ChunkRanges::all(),
            &mut reference_stream,
        )
        .unwrap();
        // (bao-tree writes no size header: iroh-blobs puts it in front)
        let first = enc.iter().zip(&reference_stream).position(|(a, b)| a != b);
        assert_eq!(enc.len(), reference_stream.len(), "length, size {size}");
        assert_eq!(first, None, "encoding differs, size {size}");
        let mut out = vec![0; size];
        decode_subtree(&enc, &root, true, 0, &mut out).unwrap();
        assert!(out == d, "decoded data differs, size {size}");
    }
}

#[test]
fn inner_subtree_round_trips() {
    // the right child of the root of 5 groups + 1000 bytes: groups 4.. (one group, short)
    // and of 3 MiB + 12345: the left child, 128 groups
    let d = data(3 * MIB + 12_345, 9);
    let (root, ob) = outboard(&d, Threads::Current);
    let (left, _) = (&ob[..32], &ob[32..64]);
    let expected: [u8; 32] = left.try_into().unwrap();
    let groups = 128usize;
    let pairs = &ob[64..64 + 64 * (groups - 1)];
    let part = &d[..groups * GROUP_LEN];
    let mut enc = vec![0; subtree_encoded_len(part.len())];
    encode_subtree(pairs, part, &expected, false, &mut enc).unwrap();
    let mut out = vec![0; part.len()];
    decode_subtree(&enc, &expected, false, 0, &mut out).unwrap();
    assert!(out == part);
    // the root's own check fails for a non-root CV
    assert_eq!(
        decode_subtree(&enc, &root, true, 0, &mut out),
        Err(SubtreeError::Pair(0))
    );
}

#[test]
fn tampering_is_found_where_it_is() {
    let size = 5 * GROUP_LEN + 1000;
    let d = data(size, 11);
    let (root, ob) = outboard(&d, Threads::Current);
    let mut enc = vec![0; subtree_encoded_len(size)];
    encode_subtree(&ob, &d, &root, true, &mut enc).unwrap();
    let mut out = vec![0; size];
    // six groups in pre-order: pair 0 (root), pair 1 (groups 0-3), pair 2 (0-1), group 0,
    // group 1, pair 3 (2-3), group 2, group 3, pair 4 (4-5), group 4, group 5
    let g = GROUP_LEN;
    let pair_at = [0, 64, 128, 192 + 2 * g, 256 + 4 * g];
    let group_at = [
        192,
        192 + g,
        256 + 2 * g,
        256 + 3 * g,
        320 + 4 * g,
        320 + 5 * g,
    ];
    for (i, &at) in group_at.iter().enumerate() {
        let mut bad = enc.clone();
        bad[at + 7] ^= 1;
        assert_eq!(
            decode_subtree(&bad, &root, true, 0, &mut out),
            Err(SubtreeError::Group(i))
        );
    }
    for (i, &at) in pair_at.iter().enumerate() {
        let mut bad = enc.clone();
        bad[at + 40] ^= 1;
        // a flipped right CV: the pair no longer hashes to its parent
        assert_eq!(
            decode_subtree(&bad, &root, true, 0, &mut out),
            Err(SubtreeError::Pair(i))
        );
    }
    let mut bad_ob = ob.clone();
    bad_ob[3 * 64 + 1] ^= 1;
    assert_eq!(
        encode_subtree(&bad_ob, &d, &root, true, &mut enc),
        Err(SubtreeError::Pair(3))
    );
    assert_eq!(
        decode_subtree(&enc[1..], &root, true, 0, &mut out),
        Err(SubtreeError::Length {
            expected: enc.len(),
            got: enc.len() - 1
        })
    );
}
