//! SSZ merkleization (`hash_tree_root`) for the fixed set of consensus containers a signer hashes.
//!
//! This follows the SSZ specification: values are packed into 32-byte chunks, chunks are
//! merkleized into a binary tree padded with zero chunks up to the type's limit, and lists
//! mix their length into the root. Only hashing is implemented; we never serialize SSZ.
//! Correctness is tested against independently computed roots (remerkleable / pyspec).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::CoreError;

/// A 32-byte SSZ chunk.
pub type Chunk = [u8; 32];

/// Depth of the deepest tree we may be asked to build (limits up to 2^64 chunks).
const MAX_DEPTH: usize = 64;

/// sha256(a ++ b).
pub fn hash_pair(a: &Chunk, b: &Chunk) -> Chunk {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// `zero_hash(d)` is the root of a full tree of depth `d` whose leaves are zero chunks.
fn zero_hash(depth: usize) -> &'static Chunk {
    static ZERO: OnceLock<Vec<Chunk>> = OnceLock::new();
    let z = ZERO.get_or_init(|| {
        let mut v = Vec::with_capacity(MAX_DEPTH + 1);
        v.push([0u8; 32]);
        for d in 0..MAX_DEPTH {
            let next = hash_pair(&v[d], &v[d]);
            v.push(next);
        }
        v
    });
    &z[depth]
}

/// Depth of a tree with room for `n` leaves (next power of two, at least one leaf).
fn depth_for(n: u64) -> usize {
    if n <= 1 {
        0
    } else {
        (64 - (n - 1).leading_zeros()) as usize
    }
}

/// Merkleize `chunks`, padding with zero chunks to `limit` leaves (or to the next power of two
/// of `chunks.len()` when `limit` is `None`). Fails when there are more chunks than the limit.
pub fn merkleize(chunks: &[Chunk], limit: Option<u64>) -> Result<Chunk, CoreError> {
    let count = chunks.len() as u64;
    let limit = match limit {
        Some(l) if count > l => return Err(CoreError::SszBounds("more chunks than the limit")),
        Some(l) => l,
        None => count,
    };
    let depth = depth_for(limit);
    if chunks.is_empty() {
        return Ok(*zero_hash(depth));
    }
    let mut layer: Vec<Chunk> = chunks.to_vec();
    for d in 0..depth {
        if layer.len() % 2 == 1 {
            layer.push(*zero_hash(d));
        }
        layer = layer
            .chunks_exact(2)
            .map(|pair| hash_pair(&pair[0], &pair[1]))
            .collect();
    }
    Ok(layer[0])
}

/// Merkleize a container's field roots (no limit beyond the field count).
pub fn container(fields: &[Chunk]) -> Chunk {
    // A container has a fixed, small number of fields; merkleize without a limit cannot fail.
    merkleize(fields, None).unwrap_or_else(|_| unreachable!("no limit"))
}

/// `mix_in_length(root, length)`.
pub fn mix_in_length(root: &Chunk, length: u64) -> Chunk {
    let mut len = [0u8; 32];
    len[..8].copy_from_slice(&length.to_le_bytes());
    hash_pair(root, &len)
}

/// Root of a `uint64`.
pub fn uint64(v: u64) -> Chunk {
    let mut c = [0u8; 32];
    c[..8].copy_from_slice(&v.to_le_bytes());
    c
}

/// Pack bytes into chunks, zero-padding the last.
fn pack(bytes: &[u8]) -> Vec<Chunk> {
    bytes
        .chunks(32)
        .map(|part| {
            let mut c = [0u8; 32];
            c[..part.len()].copy_from_slice(part);
            c
        })
        .collect()
}

/// Root of a fixed-length byte vector (`Bytes4`, `Bytes20`, `Bytes32`, `BLSPubkey`, `BLSSignature`).
pub fn byte_vector(bytes: &[u8]) -> Chunk {
    let chunks = pack(bytes);
    if chunks.is_empty() {
        return [0u8; 32];
    }
    merkleize(&chunks, None).unwrap_or_else(|_| unreachable!("no limit"))
}

/// Root of `Vector[Bytes32, N]` given exactly `N` roots.
pub fn root_vector(roots: &[Chunk]) -> Chunk {
    container(roots)
}

/// Root of `List[T, limit]` where `roots` are the elements' hash tree roots (composite T).
pub fn list_of_roots(roots: &[Chunk], limit: u64) -> Result<Chunk, CoreError> {
    Ok(mix_in_length(
        &merkleize(roots, Some(limit))?,
        roots.len() as u64,
    ))
}

/// Root of `List[uint64, limit]`.
pub fn uint64_list(values: &[u64], limit: u64) -> Result<Chunk, CoreError> {
    if values.len() as u64 > limit {
        return Err(CoreError::SszBounds("uint64 list longer than its limit"));
    }
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let chunk_limit = (limit * 8).div_ceil(32);
    Ok(mix_in_length(
        &merkleize(&pack(&bytes), Some(chunk_limit))?,
        values.len() as u64,
    ))
}

/// Root of `Bitvector[n_bits]` given its SSZ bytes. The byte length must be exactly
/// `ceil(n_bits / 8)` and bits past `n_bits` must be zero.
pub fn bitvector(bytes: &[u8], n_bits: u64) -> Result<Chunk, CoreError> {
    let expected_len = n_bits.div_ceil(8);
    if bytes.len() as u64 != expected_len {
        return Err(CoreError::SszBounds("bitvector has the wrong length"));
    }
    let spare = expected_len * 8 - n_bits;
    if spare > 0 {
        let last = bytes[bytes.len() - 1];
        if last >> (8 - spare) != 0 {
            return Err(CoreError::SszBounds(
                "bitvector has bits set past its length",
            ));
        }
    }
    merkleize(&pack(bytes), Some(n_bits.div_ceil(256)))
}

/// Root of `Bitlist[limit]` given its SSZ bytes (with the trailing delimiter bit).
pub fn bitlist(bytes: &[u8], limit: u64) -> Result<Chunk, CoreError> {
    let last = *bytes
        .last()
        .ok_or(CoreError::SszBounds("bitlist is empty (no delimiter bit)"))?;
    if last == 0 {
        return Err(CoreError::SszBounds("bitlist has no delimiter bit"));
    }
    let delimiter = 7 - last.leading_zeros() as u64; // index of the highest set bit
    let n_bits = (bytes.len() as u64 - 1) * 8 + delimiter;
    if n_bits > limit {
        return Err(CoreError::SszBounds("bitlist longer than its limit"));
    }
    let mut data = bytes.to_vec();
    let last_idx = data.len() - 1;
    data[last_idx] &= !(1u8 << delimiter);
    // Drop the byte that only carried the delimiter, so no empty chunk appears.
    data.truncate(n_bits.div_ceil(8) as usize);
    let root = merkleize(&pack(&data), Some(limit.div_ceil(256)))?;
    Ok(mix_in_length(&root, n_bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Chunk {
        let v = hex::decode(s).unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn zero_hashes_are_chained() {
        assert_eq!(*zero_hash(0), [0u8; 32]);
        assert_eq!(*zero_hash(1), hash_pair(&[0u8; 32], &[0u8; 32]));
        // Well-known: zero_hash(1) = sha256(64 zero bytes)
        assert_eq!(
            *zero_hash(1),
            h("f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b")
        );
    }

    #[test]
    fn merkleize_pads_to_limit() {
        let a = [1u8; 32];
        assert_eq!(merkleize(&[a], None).unwrap(), a);
        assert_eq!(merkleize(&[a], Some(2)).unwrap(), hash_pair(&a, &[0; 32]));
        assert_eq!(
            merkleize(&[a], Some(4)).unwrap(),
            hash_pair(&hash_pair(&a, &[0; 32]), zero_hash(1))
        );
        assert_eq!(merkleize(&[], Some(4)).unwrap(), *zero_hash(2));
        assert!(merkleize(&[a, a, a], Some(2)).is_err());
    }

    #[test]
    fn bitlist_rules() {
        // 0x01: the empty bitlist
        assert_eq!(
            bitlist(&[0x01], 2048).unwrap(),
            mix_in_length(zero_hash(3), 0)
        );
        // 0x0b = 0b1011: 3 bits (1,1,0)
        let mut c = [0u8; 32];
        c[0] = 0x03;
        assert_eq!(
            bitlist(&[0x0b], 2048).unwrap(),
            mix_in_length(&merkleize(&[c], Some(8)).unwrap(), 3)
        );
        // exactly 8 bits: delimiter is in a byte of its own
        let mut c = [0u8; 32];
        c[0] = 0xff;
        assert_eq!(
            bitlist(&[0xff, 0x01], 8).unwrap(),
            mix_in_length(&merkleize(&[c], Some(1)).unwrap(), 8)
        );
        assert!(bitlist(&[], 8).is_err());
        assert!(bitlist(&[0x00], 8).is_err());
        assert!(bitlist(&[0xff, 0x03], 8).is_err()); // 9 bits > limit 8
    }

    #[test]
    fn bitvector_rules() {
        assert!(bitvector(&[0x0f], 4).is_ok());
        assert!(bitvector(&[0x1f], 4).is_err());
        assert!(bitvector(&[0x01, 0x00], 4).is_err());
        assert!(bitvector(&[0x01], 8).is_ok());
    }

    #[test]
    fn uint64_list_packs_four_per_chunk() {
        let root = uint64_list(&[1, 2, 3, 4, 5], 2048).unwrap();
        let mut c0 = [0u8; 32];
        for (i, v) in [1u64, 2, 3, 4].iter().enumerate() {
            c0[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let c1 = uint64(5);
        let expected = mix_in_length(&merkleize(&[c0, c1], Some(512)).unwrap(), 5);
        assert_eq!(root, expected);
        assert!(uint64_list(&[1, 2, 3], 2).is_err());
    }
}
