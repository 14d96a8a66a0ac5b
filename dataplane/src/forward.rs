//! The `copy` relay: moves bytes both ways between two connected streams through one bounded
//! [`Ring`] per direction.
//!
//! Driven as one task per proxied connection. Each direction reads into its ring while earlier
//! bytes are still being written to the peer. At end of stream (the source's FIN), the ring is
//! drained, flushed and the peer's write side is shut down (half-close): the other direction
//! keeps running until it ends too. A read or write error ends both directions at once and is
//! returned, so the caller can reset both connections (RST propagation).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ring::Ring;

/// Which side of a relay failed, and how.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("reading from the {side} side failed: {source}")]
    Read {
        side: Side,
        #[source]
        source: io::Error,
    },
    #[error("writing to the {side} side failed: {source}")]
    Write {
        side: Side,
        #[source]
        source: io::Error,
    },
}

/// The two ends of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The connection accepted on our listener.
    Accepted,
    /// The connection we opened toward the target.
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Accepted => "accepted",
            Self::Target => "target",
        })
    }
}

/// Bytes moved by a finished relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    pub to_target: u64,
    pub from_target: u64,
}

/// Relays until both directions reached end of stream, or one failed.
///
/// `to_target` / `from_target` are incremented as bytes are written, so the control plane sees
/// progress while the connection is open.
pub async fn relay<A, T>(
    accepted: A,
    target: T,
    buffer_size: usize,
    to_target: &AtomicU64,
    from_target: &AtomicU64,
) -> Result<Moved, RelayError>
where
    A: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (ar, aw) = tokio::io::split(accepted);
    let (tr, tw) = tokio::io::split(target);
    let mut up = Pump::new(ar, tw, buffer_size, Side::Accepted, Side::Target, to_target);
    let mut down = Pump::new(
        tr,
        aw,
        buffer_size,
        Side::Target,
        Side::Accepted,
        from_target,
    );
    let (a, b) = tokio::try_join!(
        poll_fn(|cx| up.poll_run(cx)),
        poll_fn(|cx| down.poll_run(cx))
    )?;
    Ok(Moved {
        to_target: a,
        from_target: b,
    })
}

/// One direction: source → ring → sink.
struct Pump<'c, R, W> {
    src: R,
    dst: W,
    ring: Ring,
    src_side: Side,
    dst_side: Side,
    counter: &'c AtomicU64,
    moved: u64,
    eof: bool,
    needs_flush: bool,
    done: bool,
}

impl<'c, R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Pump<'c, R, W> {
    fn new(
        src: R,
        dst: W,
        buffer_size: usize,
        src_side: Side,
        dst_side: Side,
        counter: &'c AtomicU64,
    ) -> Self {
        Self {
            src,
            dst,
            ring: Ring::new(buffer_size),
            src_side,
            dst_side,
            counter,
            moved: 0,
            eof: false,
            needs_flush: false,
            done: false,
        }
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Result<u64, RelayError>> {
        if self.done {
            return Poll::Ready(Ok(self.moved));
        }
        loop {
            let mut progressed = false;
            if !self.eof && !self.ring.is_full() {
                let mut buf = ReadBuf::new(self.ring.free_mut());
                match Pin::new(&mut self.src).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => {
                        let n = buf.filled().len();
                        if n == 0 {
                            self.eof = true;
                        } else {
                            self.ring.commit(n);
                        }
                        progressed = true;
                    }
                    Poll::Ready(Err(source)) => {
                        return Poll::Ready(Err(RelayError::Read {
                            side: self.src_side,
                            source,
                        }));
                    }
                    Poll::Pending => {}
                }
            }
            if !self.ring.is_empty() {
                match Pin::new(&mut self.dst).poll_write(cx, self.ring.filled()) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(self.write_error(io::ErrorKind::WriteZero.into())));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.ring.consume(n);
                        self.moved += n as u64;
                        self.counter.fetch_add(n as u64, Ordering::Relaxed);
                        self.needs_flush = true;
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.write_error(e))),
                    Poll::Pending => {}
                }
            }
            if self.ring.is_empty() && self.needs_flush {
                // Writers that buffer (TLS) only put bytes on the wire when flushed.
                match Pin::new(&mut self.dst).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.write_error(e))),
                    Poll::Pending => {}
                }
            }
            if self.eof && self.ring.is_empty() {
                ready!(Pin::new(&mut self.dst).poll_shutdown(cx))
                    .map_err(|e| self.write_error(e))?;
                self.done = true;
                return Poll::Ready(Ok(self.moved));
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    fn write_error(&self, source: io::Error) -> RelayError {
        RelayError::Write {
            side: self.dst_side,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test]
    async fn relays_both_ways_with_half_close() {
        // client <-> [accepted | relay | target] <-> server, over in-memory pipes.
        let (client, accepted) = duplex(1024);
        let (target, server) = duplex(1024);
        let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let reply: Vec<u8> = (0..50_000u32).map(|i| (i * 13) as u8).collect();

        let relay_task = relay(accepted, target, 4096, &up, &down);
        let client_task = async {
            let (mut r, mut w) = tokio::io::split(client);
            let send = async {
                w.write_all(&payload).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let recv = async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            };
            tokio::join!(send, recv).1
        };
        let server_task = async {
            let (mut r, mut w) = tokio::io::split(server);
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            // The server answers only after the client's FIN: half-close must have passed.
            w.write_all(&reply).await.unwrap();
            w.shutdown().await.unwrap();
            got
        };
        let (moved, client_got, server_got) = tokio::join!(relay_task, client_task, server_task);
        let moved = moved.unwrap();
        assert_eq!(server_got, payload);
        assert_eq!(client_got, reply);
        assert_eq!(moved.to_target, payload.len() as u64);
        assert_eq!(moved.from_target, reply.len() as u64);
        assert_eq!(up.load(Ordering::Relaxed), payload.len() as u64);
        assert_eq!(down.load(Ordering::Relaxed), reply.len() as u64);
    }
}
