//! Reed–Solomon parity over one stripe of blocks (FORMAT.md §14.4), with the
//! `reed-solomon-simd` crate (GF(2^16), Leopard codes): `data` original blocks, `parity`
//! recovery blocks, any `data` of the `data + parity` rebuild the rest.
//!
//! Blocks shorter than the stripe's block size are zero-padded (a short last block of a
//! volume, or a volume with fewer blocks than the longest). The crate does not detect
//! damage inside a block: callers pass only blocks whose signed SHA-256 matched, and check
//! every rebuilt block against its signed SHA-256 before use.

use std::collections::BTreeMap;

/// Why a stripe could not be encoded or rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParityError {
    /// Fewer good blocks than data blocks: the stripe cannot be rebuilt.
    #[error("{have} good blocks of {need} needed")]
    TooFew {
        /// Good blocks present (data and parity).
        have: usize,
        /// Data blocks per stripe.
        need: usize,
    },
    /// The codec refused (shard counts out of its range): a bug or a limit.
    #[error("Reed-Solomon codec: {0}")]
    Codec(String),
}

/// The `parity` recovery blocks of one stripe of `data` blocks, each `block_size` long
/// (`block_size` even; shorter blocks are zero-padded).
pub fn encode(data: &[&[u8]], parity: usize, block_size: usize) -> Result<Vec<Vec<u8>>, ParityError> {
    let padded = data.iter().map(|b| padded(b, block_size));
    reed_solomon_simd::encode(data.len(), parity, padded).map_err(|e| ParityError::Codec(e.to_string()))
}

/// Encodes stripe after stripe with one codec, whose working space is kept between
/// stripes (pack encodes thousands of them).
pub struct StripeEncoder {
    codec: Option<reed_solomon_simd::ReedSolomonEncoder>,
    data: usize,
    parity: usize,
    /// A short block, zero-padded to the shard length.
    pad: Vec<u8>,
}

impl StripeEncoder {
    /// An encoder of stripes of `data` blocks into `parity` recovery blocks.
    pub fn new(data: usize, parity: usize) -> StripeEncoder {
        StripeEncoder { codec: None, data, parity, pad: Vec::new() }
    }

    /// Encodes one stripe of `blocks` (each at most `shard` bytes, `shard` even) and hands
    /// each recovery block, in order, to `out`.
    pub fn encode<E: From<ParityError>>(
        &mut self,
        blocks: &[&[u8]],
        shard: usize,
        mut out: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let codec_error = |e: reed_solomon_simd::Error| E::from(ParityError::Codec(e.to_string()));
        let codec = match &mut self.codec {
            Some(c) => {
                c.reset(self.data, self.parity, shard).map_err(codec_error)?;
                c
            }
            None => self.codec.insert(
                reed_solomon_simd::ReedSolomonEncoder::new(self.data, self.parity, shard).map_err(codec_error)?,
            ),
        };
        for block in blocks {
            if block.len() == shard {
                codec.add_original_shard(block).map_err(codec_error)?;
            } else {
                self.pad.clear();
                self.pad.extend_from_slice(block);
                self.pad.resize(shard, 0);
                codec.add_original_shard(&self.pad).map_err(codec_error)?;
            }
        }
        let result = codec.encode().map_err(codec_error)?;
        for recovery in result.recovery_iter() {
            out(recovery)?;
        }
        Ok(())
    }
}

/// Rebuilds the missing data blocks of one stripe: `data[i]` and `parity[i]` are the good
/// blocks (`None` where missing or damaged). Returns the rebuilt data blocks by index, each
/// `block_size` long (the caller trims a short block to its length).
pub fn rebuild(
    data: &[Option<&[u8]>],
    parity: &[Option<&[u8]>],
    block_size: usize,
) -> Result<BTreeMap<usize, Vec<u8>>, ParityError> {
    let have = data.iter().chain(parity).filter(|b| b.is_some()).count();
    if have < data.len() {
        return Err(ParityError::TooFew { have, need: data.len() });
    }
    if data.iter().all(Option::is_some) {
        return Ok(BTreeMap::new());
    }
    let originals = data.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, padded(b, block_size))));
    let recovery = parity.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, padded(b, block_size))));
    reed_solomon_simd::decode(data.len(), parity.len(), originals, recovery)
        .map_err(|e| ParityError::Codec(e.to_string()))
}

/// `block` zero-padded to `size` (borrowed when already that long).
fn padded(block: &[u8], size: usize) -> std::borrow::Cow<'_, [u8]> {
    if block.len() == size {
        std::borrow::Cow::Borrowed(block)
    } else {
        let mut v = block.to_vec();
        v.resize(size, 0);
        std::borrow::Cow::Owned(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_two_lost_of_five_plus_two_are_rebuilt() {
        let size = 1024;
        let blocks: Vec<Vec<u8>> =
            (0..5u8).map(|i| (0..size).map(|j| (j as u8) ^ i.wrapping_mul(37)).collect()).collect();
        let mut short = blocks.clone();
        short[4].truncate(100);
        let refs: Vec<&[u8]> = short.iter().map(Vec::as_slice).collect();
        let parity = encode(&refs, 2, size).unwrap();
        let mut data: Vec<Option<&[u8]>> = refs.iter().copied().map(Some).collect();
        data[1] = None;
        data[4] = None;
        let par: Vec<Option<&[u8]>> = parity.iter().map(|p| Some(p.as_slice())).collect();
        let rebuilt = rebuild(&data, &par, size).unwrap();
        assert_eq!(rebuilt[&1], blocks[1]);
        assert_eq!(&rebuilt[&4][..100], &short[4][..]);
        assert!(rebuilt[&4][100..].iter().all(|&b| b == 0));
        data[0] = None;
        assert!(matches!(rebuild(&data, &par, size), Err(ParityError::TooFew { have: 4, need: 5 })));
    }

    #[test]
    fn one_data_block_with_two_parity_blocks() {
        let block = vec![9u8; 128];
        let parity = encode(&[&block], 2, 128).unwrap();
        let rebuilt = rebuild(&[None], &[None, Some(&parity[1])], 128).unwrap();
        assert_eq!(rebuilt[&0], block);
    }

    #[test]
    fn the_stripe_encoder_matches_one_shot_encoding_across_stripes() {
        let mut enc = StripeEncoder::new(3, 2);
        for (len, shard) in [(1024usize, 1024usize), (100, 128)] {
            let blocks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; len]).collect();
            let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
            let mut got = Vec::new();
            enc.encode(&refs, shard, |b| {
                got.push(b.to_vec());
                Ok::<(), ParityError>(())
            })
            .unwrap();
            assert_eq!(got, encode(&refs, 2, shard).unwrap());
        }
    }
}
