//! Framing of the raw-TCP stamped workload (`tpub` / `tsub`).
//!
//! Every message is exactly `size` bytes: a 32-byte header, then filler. All fields are
//! little-endian:
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..4 | magic | [`MAGIC`] |
//! | 4..8 | size | the whole message in bytes, header included (≥ [`HEADER_LEN`]) |
//! | 8..16 | seq | 0-based sequence number |
//! | 16..24 | sent_ns | CLOCK_MONOTONIC at send, ns (every network namespace shares the clock) |
//! | 24..32 | count | messages in the whole stream |
//!
//! Each message carries the stream's count, so the subscriber knows what to expect even if
//! the first message is lost; the end of the stream is the publisher closing the connection
//! after the last one.

use thiserror::Error;

/// `"S2TS"` read as a little-endian u32.
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"S2TS");
pub(crate) const HEADER_LEN: usize = 32;

/// A message header, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) size: u32,
    pub(crate) seq: u64,
    pub(crate) sent_ns: u64,
    pub(crate) count: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    #[error("message of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short { len: usize },
    #[error(
        "bad magic {found:#010x} (expected {MAGIC:#010x}): the peer is not an s2bench tpub, or the stream lost framing"
    )]
    BadMagic { found: u32 },
    #[error("header announces a message of {size} bytes, less than the {HEADER_LEN}-byte header")]
    SizeBelowHeader { size: u32 },
    #[error("header announces a stream of 0 messages")]
    ZeroCount,
    #[error("sequence number {seq} is outside the announced stream of {count} messages")]
    SeqOutOfRange { seq: u64, count: u64 },
    #[error(
        "message size {size} is below the {HEADER_LEN}-byte header or above 4 GiB: give --size in {HEADER_LEN}..=4294967295"
    )]
    BadSize { size: u64 },
}

impl Header {
    /// Writes the header at the front of `msg`, which must hold at least [`HEADER_LEN`] bytes.
    pub(crate) fn encode(&self, msg: &mut [u8]) -> Result<(), FrameError> {
        let len = msg.len();
        let h = msg.get_mut(..HEADER_LEN).ok_or(FrameError::Short { len })?;
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&self.size.to_le_bytes());
        h[8..16].copy_from_slice(&self.seq.to_le_bytes());
        h[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
        h[24..32].copy_from_slice(&self.count.to_le_bytes());
        Ok(())
    }

    /// Reads and validates a header: the length first, then magic, size, count and seq.
    pub(crate) fn decode(msg: &[u8]) -> Result<Self, FrameError> {
        let h: &[u8; HEADER_LEN] = msg
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(FrameError::Short { len: msg.len() })?;
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(FrameError::BadMagic { found: magic });
        }
        let header = Self {
            size: u32_at(4),
            seq: u64_at(8),
            sent_ns: u64_at(16),
            count: u64_at(24),
        };
        if (header.size as usize) < HEADER_LEN {
            return Err(FrameError::SizeBelowHeader { size: header.size });
        }
        if header.count == 0 {
            return Err(FrameError::ZeroCount);
        }
        if header.seq >= header.count {
            return Err(FrameError::SeqOutOfRange {
                seq: header.seq,
                count: header.count,
            });
        }
        Ok(header)
    }
}

/// Checks a requested message size fits the header and the u32 size field.
pub(crate) fn checked_size(size: u64) -> Result<u32, FrameError> {
    match u32::try_from(size) {
        Ok(s) if s as usize >= HEADER_LEN => Ok(s),
        _ => Err(FrameError::BadSize { size }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            size: 64,
            seq: 41,
            sent_ns: 1_234_567_890_123,
            count: 1000,
        }
    }

    #[test]
    fn header_round_trips() {
        let mut m = [0xeeu8; 64];
        sample().encode(&mut m).unwrap();
        assert_eq!(&m[..4], b"S2TS");
        assert_eq!(Header::decode(&m), Ok(sample()));
        // Filler after the header is left alone.
        assert!(m[HEADER_LEN..].iter().all(|&b| b == 0xee));
    }

    #[test]
    fn short_buffers_are_refused_before_anything_else() {
        let mut m = [0u8; 64];
        sample().encode(&mut m).unwrap();
        assert_eq!(Header::decode(&m[..31]), Err(FrameError::Short { len: 31 }));
        assert_eq!(Header::decode(&[]), Err(FrameError::Short { len: 0 }));
        assert_eq!(
            sample().encode(&mut [0u8; 16]),
            Err(FrameError::Short { len: 16 })
        );
    }

    #[test]
    fn corrupted_headers_give_precise_errors() {
        let mut m = [0u8; 64];
        sample().encode(&mut m).unwrap();
        let mut bad = m;
        bad[0] ^= 0xff;
        assert_eq!(
            Header::decode(&bad),
            Err(FrameError::BadMagic {
                found: u32::from_le_bytes([b'S' ^ 0xff, b'2', b'T', b'S'])
            })
        );
        let mut bad = m;
        bad[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(
            Header::decode(&bad),
            Err(FrameError::SizeBelowHeader { size: 8 })
        );
        let mut bad = m;
        bad[24..32].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(Header::decode(&bad), Err(FrameError::ZeroCount));
        let mut bad = m;
        bad[8..16].copy_from_slice(&1000u64.to_le_bytes());
        assert_eq!(
            Header::decode(&bad),
            Err(FrameError::SeqOutOfRange {
                seq: 1000,
                count: 1000
            })
        );
        let e = Header::decode(&m[..3]).unwrap_err().to_string();
        assert!(e.contains("3 bytes"), "{e}");
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_valid_ones_round_trip() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for i in 0..20_000usize {
            let mut buf = vec![0u8; i % 48];
            buf.iter_mut().for_each(|b| *b = next() as u8);
            // Every other buffer gets the magic, so the later checks are reached too.
            if i % 2 == 0 && buf.len() >= 4 {
                buf[..4].copy_from_slice(b"S2TS");
            }
            if let Ok(h) = Header::decode(&buf) {
                accepted += 1;
                let mut again = vec![0u8; HEADER_LEN];
                h.encode(&mut again).unwrap();
                assert_eq!(again[..], buf[..HEADER_LEN]);
            }
        }
        assert!(accepted > 0);
    }

    #[test]
    fn sizes_must_hold_the_header() {
        assert_eq!(checked_size(32), Ok(32));
        assert_eq!(checked_size(1 << 20), Ok(1 << 20));
        assert_eq!(checked_size(31), Err(FrameError::BadSize { size: 31 }));
        assert_eq!(
            checked_size(1 << 32),
            Err(FrameError::BadSize { size: 1 << 32 })
        );
    }
}
