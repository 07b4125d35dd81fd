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
    /// A block longer than its stripe's shard: a bug in the caller.
    #[error("a block of {len} bytes in a stripe of {shard}-byte shards")]
    BlockTooLong {
        /// The block's length.
        len: usize,
        /// The stripe's shard length.
        shard: usize,
    },
    /// A stripe given more or fewer blocks than it has data blocks: a bug in the caller.
    #[error("a stripe given {blocks} blocks, of {data}")]
    BlockCount {
        /// Blocks given.
        blocks: usize,
        /// Data blocks per stripe.
        data: usize,
    },
    /// A block added before the stripe was started: a bug in the caller.
    #[error("a block added before its stripe was started")]
    NotStarted,
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

/// Encodes stripe after stripe. A stripe's blocks are added one at a time, each read
/// straight into a buffer the encoder lends (so a stripe never needs all its blocks in
/// memory at once), then its recovery blocks are handed out in order.
///
/// With one recovery block per stripe, the code's recovery shard is the XOR of the
/// zero-padded originals (Leopard's high-rate encoder with a chunk of one shard: its
/// transforms are the identity and the chunks are XORed), so that case is computed in
/// place, without the codec's copies. `xor_equals_the_codec_for_one_recovery_block` holds
/// the two equal for 1 to 128 data blocks (and more) with short blocks; the codec stays
/// the definition (FORMAT.md §14.4).
pub struct StripeEncoder {
    data: usize,
    parity: usize,
    /// The stripe's shard length.
    shard: usize,
    /// Blocks added to the stripe so far.
    added: usize,
    /// One recovery block: the XOR of the blocks added so far.
    xor: Vec<u8>,
    /// The block being read.
    block: Vec<u8>,
    /// Several recovery blocks: the codec, whose working space is kept between stripes
    /// (pack encodes thousands of them).
    codec: Option<reed_solomon_simd::ReedSolomonEncoder>,
}

impl StripeEncoder {
    /// An encoder of stripes of `data` blocks into `parity` recovery blocks.
    pub fn new(data: usize, parity: usize) -> StripeEncoder {
        StripeEncoder { data, parity, shard: 0, added: 0, xor: Vec::new(), block: Vec::new(), codec: None }
    }

    /// Starts a stripe whose shard length is `shard` (even; every block at most that long).
    pub fn start(&mut self, shard: usize) -> Result<(), ParityError> {
        self.shard = shard;
        self.added = 0;
        if self.parity == 1 {
            return Ok(());
        }
        match &mut self.codec {
            Some(c) => c.reset(self.data, self.parity, shard).map_err(codec_error)?,
            None => {
                let codec =
                    reed_solomon_simd::ReedSolomonEncoder::new(self.data, self.parity, shard).map_err(codec_error)?;
                self.codec = Some(codec);
            }
        }
        Ok(())
    }

    /// Adds the stripe's next block, `len` bytes that `fill` reads into the buffer it is
    /// given (the rest of the shard is zero).
    pub fn add<E: From<ParityError>>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if len > self.shard {
            return Err(ParityError::BlockTooLong { len, shard: self.shard }.into());
        }
        if self.added == self.data {
            return Err(ParityError::BlockCount { blocks: self.added + 1, data: self.data }.into());
        }
        if self.parity == 1 && self.added == 0 {
            // The first block is read straight into the recovery block.
            self.xor.resize(self.shard, 0);
            fill(&mut self.xor[..len])?;
            self.xor[len..].fill(0);
        } else {
            self.block.resize(len, 0);
            fill(&mut self.block)?;
            if self.parity == 1 {
                xor_into(&mut self.xor[..len], &self.block);
            } else {
                self.block.resize(self.shard, 0);
                let codec = self.codec.as_mut().ok_or(ParityError::NotStarted)?;
                codec.add_original_shard(&self.block).map_err(codec_error)?;
            }
        }
        self.added += 1;
        Ok(())
    }

    /// Hands each recovery block of the stripe, in order, to `out`.
    pub fn finish<E: From<ParityError>>(&mut self, mut out: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.added != self.data {
            return Err(ParityError::BlockCount { blocks: self.added, data: self.data }.into());
        }
        if self.parity == 1 {
            return out(&self.xor);
        }
        let codec = self.codec.as_mut().ok_or(ParityError::NotStarted)?;
        let result = codec.encode().map_err(codec_error)?;
        for recovery in result.recovery_iter() {
            out(recovery)?;
        }
        Ok(())
    }
}

/// `acc ^= block`, byte by byte (the compiler vectorises the loop).
fn xor_into(acc: &mut [u8], block: &[u8]) {
    for (a, b) in acc.iter_mut().zip(block) {
        *a ^= b;
    }
}

fn codec_error(e: reed_solomon_simd::Error) -> ParityError {
    ParityError::Codec(e.to_string())
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
    if let [Some(recovery)] = parity {
        return Ok(rebuild_one_by_xor(data, recovery, block_size));
    }
    let originals = data.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, padded(b, block_size))));
    let recovery = parity.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, padded(b, block_size))));
    reed_solomon_simd::decode(data.len(), parity.len(), originals, recovery)
        .map_err(|e| ParityError::Codec(e.to_string()))
}

/// [`rebuild`] with one recovery block per stripe, which is the XOR of the zero-padded
/// originals (see [`StripeEncoder`]): the one missing block is the XOR of the recovery block
/// and the others, made without the codec's work space (megabytes per stripe, allocated
/// and freed on the reading thread).
fn rebuild_one_by_xor(data: &[Option<&[u8]>], recovery: &[u8], block_size: usize) -> BTreeMap<usize, Vec<u8>> {
    let mut block = padded(recovery, block_size).into_owned();
    for present in data.iter().flatten() {
        xor_into(&mut block, present);
    }
    data.iter().position(Option::is_none).map(|missing| (missing, block)).into_iter().collect()
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

    /// Deterministic bytes (xorshift), different for every `seed`.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// The stripe encoder's recovery blocks for `blocks`.
    fn stripe(enc: &mut StripeEncoder, blocks: &[Vec<u8>], shard: usize) -> Vec<Vec<u8>> {
        enc.start(shard).unwrap();
        for b in blocks {
            enc.add(b.len(), |buf: &mut [u8]| {
                buf.copy_from_slice(b);
                Ok::<(), ParityError>(())
            })
            .unwrap();
        }
        let mut got = Vec::new();
        enc.finish(|r| {
            got.push(r.to_vec());
            Ok::<(), ParityError>(())
        })
        .unwrap();
        got
    }

    /// The XOR shortcut must never diverge from the code the format names: for every data
    /// block count a set can have up to 128 (and the largest ones), full, short and empty
    /// blocks, and shard lengths that are and are not multiples of 64.
    #[test]
    fn xor_equals_the_codec_for_one_recovery_block() {
        let mut enc_for = std::collections::HashMap::new();
        for data in (1..=128usize).chain([255, 256, 257, 512, 999]) {
            for shard in [64usize, 100, 1024] {
                let blocks: Vec<Vec<u8>> = (0..data)
                    .map(|i| {
                        // Every seventh block empty (a volume with fewer blocks), every
                        // third short (a volume's last block), odd lengths too.
                        let len = match i {
                            _ if i > 0 && i % 7 == 0 => 0,
                            _ if i % 3 == 2 => 1 + (i * 37) % (shard - 1),
                            _ => shard,
                        };
                        noise((data * 1000 + i) as u64 ^ shard as u64, len)
                    })
                    .collect();
                let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                let codec = encode(&refs, 1, shard).unwrap();
                let enc = enc_for.entry(data).or_insert_with(|| StripeEncoder::new(data, 1));
                assert_eq!(stripe(enc, &blocks, shard), codec, "{data} data blocks, shard {shard}");
            }
        }
    }

    /// With one parity volume a missing block is rebuilt by XOR: the same bytes as the
    /// codec's decoding, and the original block zero-padded, whichever block is missing.
    #[test]
    fn one_recovery_block_rebuilds_by_xor_as_the_codec_does() {
        for data in [1usize, 2, 5, 17] {
            for shard in [64usize, 1024] {
                let blocks: Vec<Vec<u8>> = (0..data)
                    .map(|i| noise((data * 100 + i) as u64, if i % 3 == 2 { 1 + i * 13 % (shard - 1) } else { shard }))
                    .collect();
                let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                let recovery = encode(&refs, 1, shard).unwrap();
                for (missing, block) in blocks.iter().enumerate() {
                    let given: Vec<Option<&[u8]>> =
                        refs.iter().enumerate().map(|(i, b)| (i != missing).then_some(*b)).collect();
                    let rebuilt = rebuild(&given, &[Some(&recovery[0])], shard).unwrap();
                    let originals = given.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, padded(b, shard))));
                    let codec = reed_solomon_simd::decode(data, 1, originals, [(0, &recovery[0])]).unwrap();
                    assert_eq!(rebuilt, codec, "{data} blocks, shard {shard}, block {missing} missing");
                    let mut original = block.clone();
                    original.resize(shard, 0);
                    assert_eq!(rebuilt.get(&missing), Some(&original));
                }
            }
        }
    }

    #[test]
    fn the_stripe_encoder_matches_one_shot_encoding_across_stripes() {
        for parity in 1..=3 {
            let mut enc = StripeEncoder::new(3, parity);
            for (len, shard) in [(1024usize, 1024usize), (100, 128), (1024, 1024)] {
                let blocks: Vec<Vec<u8>> = (0..3u64).map(|i| noise(i + len as u64, len)).collect();
                let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                assert_eq!(stripe(&mut enc, &blocks, shard), encode(&refs, parity, shard).unwrap());
            }
        }
    }

    #[test]
    fn a_misused_stripe_encoder_errs_without_panicking() {
        for parity in [1, 2] {
            let mut enc = StripeEncoder::new(2, parity);
            let fill = |b: &mut [u8]| {
                b.fill(1);
                Ok::<(), ParityError>(())
            };
            let nothing = |_: &[u8]| Ok::<(), ParityError>(());
            assert!(matches!(enc.add(64, fill), Err(ParityError::BlockTooLong { .. } | ParityError::NotStarted)));
            enc.start(64).unwrap();
            assert!(matches!(enc.add(65, fill), Err(ParityError::BlockTooLong { len: 65, shard: 64 })));
            enc.add(64, fill).unwrap();
            assert!(matches!(enc.finish(nothing), Err(ParityError::BlockCount { blocks: 1, data: 2 })));
            enc.add(10, fill).unwrap();
            assert!(matches!(enc.add(10, fill), Err(ParityError::BlockCount { blocks: 3, data: 2 })));
            enc.finish(nothing).unwrap();
        }
    }
}
