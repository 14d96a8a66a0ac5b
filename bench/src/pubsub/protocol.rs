//! The paper's pub/sub wire protocol (reference §6, `pub_bench.py` / `sub_bench.py`), without
//! sockets: message contents, the sync reply and the sample count.
//!
//! Sync socket (REQ → REP): `"SYNC"` → `"<size>, <samples>"`; at the end `"FIN"` → `"FIN_ACK"`.
//! Data socket (PUB → SUB, topic prefix `"SciStream"`): `samples` messages
//! `"SciStream:" + "a" · size`, then `"SciStream:STOP"`. A message is STOP when its byte 10
//! (right after the prefix) is `'S'`.

use thiserror::Error;

/// The topic every data message starts with; the subscriber subscribes to it.
pub(crate) const TOPIC: &[u8] = b"SciStream";
/// The prefix of every data message, counted out of the goodput.
pub(crate) const PREFIX: &[u8] = b"SciStream:";
/// The end-of-stream message.
pub(crate) const STOP: &[u8] = b"SciStream:STOP";
/// The payload filler byte.
pub(crate) const FILLER: u8 = b'a';
pub(crate) const SYNC_REQUEST: &[u8] = b"SYNC";
pub(crate) const FIN: &[u8] = b"FIN";
pub(crate) const FIN_ACK: &[u8] = b"FIN_ACK";

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum ProtocolError {
    #[error("message size 0: give --size of at least 1 byte")]
    ZeroSize,
    #[error(
        "dataset of {dataset} bytes is smaller than one message of {size} bytes: give a larger --dataset or --samples"
    )]
    DatasetTooSmall { dataset: u64, size: u64 },
    #[error("--samples 0: the stream needs at least one message")]
    ZeroSamples,
    #[error(
        "sync reply {reply:?} is not \"<size>, <samples>\": {why}; is the peer a pub_bench publisher?"
    )]
    BadSyncReply { reply: String, why: &'static str },
}

/// The number of messages for a dataset: `floor(dataset / size)` (the paper took `dataset` in
/// units of 10⁹ bytes; we take bytes), or `samples` when given.
pub(crate) fn sample_count(
    size: u64,
    dataset: u64,
    samples: Option<u64>,
) -> Result<u64, ProtocolError> {
    if size == 0 {
        return Err(ProtocolError::ZeroSize);
    }
    match samples {
        Some(0) => Err(ProtocolError::ZeroSamples),
        Some(n) => Ok(n),
        None if dataset < size => Err(ProtocolError::DatasetTooSmall { dataset, size }),
        None => Ok(dataset / size),
    }
}

/// The sync reply as `pub_bench.py` formats it.
pub(crate) fn sync_reply(size: u64, samples: u64) -> String {
    format!("{size}, {samples}")
}

/// Size and samples from a sync reply: two decimal integers separated by a comma, spaces
/// around either allowed; size and samples must be positive.
pub(crate) fn parse_sync_reply(reply: &[u8]) -> Result<(u64, u64), ProtocolError> {
    let text = String::from_utf8_lossy(reply);
    let bad = |why| ProtocolError::BadSyncReply {
        reply: text.chars().take(80).collect(),
        why,
    };
    let (size, samples) = text.split_once(',').ok_or_else(|| bad("no comma"))?;
    let size: u64 = size
        .trim()
        .parse()
        .map_err(|_| bad("size is not an integer"))?;
    let samples: u64 = samples
        .trim()
        .parse()
        .map_err(|_| bad("samples is not an integer"))?;
    if size == 0 {
        return Err(bad("size is 0"));
    }
    if samples == 0 {
        return Err(bad("samples is 0"));
    }
    Ok((size, samples))
}

/// A data message of `size` payload bytes.
pub(crate) fn data_message(size: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(PREFIX.len() + size);
    m.extend_from_slice(PREFIX);
    m.resize(PREFIX.len() + size, FILLER);
    m
}

/// The paper's STOP test: byte 10 is `'S'`.
pub(crate) fn is_stop(msg: &[u8]) -> bool {
    msg.get(PREFIX.len()) == Some(&b'S')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_reply_round_trips_in_the_paper_format() {
        assert_eq!(sync_reply(1024, 9_765_625), "1024, 9765625");
        assert_eq!(parse_sync_reply(b"1024, 9765625"), Ok((1024, 9_765_625)));
        assert_eq!(parse_sync_reply(b"512,19531250"), Ok((512, 19_531_250)));
        assert_eq!(parse_sync_reply(b" 8 ,  3 "), Ok((8, 3)));
    }

    #[test]
    fn malformed_sync_replies_say_why() {
        let why = |r: &[u8]| match parse_sync_reply(r) {
            Err(ProtocolError::BadSyncReply { why, .. }) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(why(b"SYNC_REP"), "no comma");
        assert_eq!(why(b""), "no comma");
        assert_eq!(why(b"1024"), "no comma");
        assert_eq!(why(b"abc, 10"), "size is not an integer");
        assert_eq!(why(b"1024, -5"), "samples is not an integer");
        assert_eq!(why(b"1024, 10, 3"), "samples is not an integer");
        assert_eq!(why(b"0, 10"), "size is 0");
        assert_eq!(why(b"10, 0"), "samples is 0");
        let e = parse_sync_reply(b"hello").unwrap_err().to_string();
        assert!(e.contains("\"hello\""), "{e}");
    }

    #[test]
    fn sample_count_is_floor_of_dataset_over_size() {
        assert_eq!(sample_count(1024, 10_000_000_000, None), Ok(9_765_625));
        assert_eq!(sample_count(1000, 2999, None), Ok(2));
        assert_eq!(sample_count(1024, 1, Some(2000)), Ok(2000));
        assert_eq!(sample_count(0, 10, None), Err(ProtocolError::ZeroSize));
        assert_eq!(
            sample_count(1024, 1000, None),
            Err(ProtocolError::DatasetTooSmall {
                dataset: 1000,
                size: 1024
            })
        );
        assert_eq!(
            sample_count(1024, 1 << 30, Some(0)),
            Err(ProtocolError::ZeroSamples)
        );
    }

    #[test]
    fn data_and_stop_messages() {
        let m = data_message(4);
        assert_eq!(m, b"SciStream:aaaa");
        assert!(!is_stop(&m));
        assert!(is_stop(STOP));
        // A zero-byte payload would be indistinguishable from a short message: not STOP.
        assert!(!is_stop(PREFIX));
    }
}
