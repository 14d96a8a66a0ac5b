//! The `splice` relay: socket → pipe → socket with `splice(2)`, so payload bytes never enter
//! user space. One pipe per direction, sized with `F_SETPIPE_SZ`. Same semantics as the copy
//! relay: half-close forwarded, errors end both directions.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::forward::{RelayError, Side};

/// Relays both directions until both ended, or one failed.
pub async fn relay(
    accepted: &TcpStream,
    target: &TcpStream,
    pipe_size: usize,
    to_target: &AtomicU64,
    from_target: &AtomicU64,
) -> Result<(), RelayError> {
    let up_pipe = Pipe::new(pipe_size).map_err(|source| RelayError::Read {
        side: Side::Accepted,
        source,
    })?;
    let down_pipe = Pipe::new(pipe_size).map_err(|source| RelayError::Read {
        side: Side::Target,
        source,
    })?;
    tokio::try_join!(
        pump(
            accepted,
            target,
            &up_pipe,
            Side::Accepted,
            Side::Target,
            to_target
        ),
        pump(
            target,
            accepted,
            &down_pipe,
            Side::Target,
            Side::Accepted,
            from_target
        ),
    )?;
    Ok(())
}

async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &Pipe,
    src_side: Side,
    dst_side: Side,
    counter: &AtomicU64,
) -> Result<u64, RelayError> {
    let read_err = |source| RelayError::Read {
        side: src_side,
        source,
    };
    let write_err = |source| RelayError::Write {
        side: dst_side,
        source,
    };
    let (mut in_pipe, mut moved, mut eof) = (0usize, 0u64, false);
    // The pipe ran out of buffer slots before its byte capacity (every skb fragment takes a
    // slot); reading waits until some bytes drained.
    let mut pipe_full = false;
    loop {
        let mut progressed = false;
        if !eof && !pipe_full && in_pipe < pipe.capacity {
            match src.try_io(Interest::READABLE, || {
                fill_pipe(
                    src.as_raw_fd(),
                    pipe.write.as_raw_fd(),
                    pipe.capacity - in_pipe,
                )
            }) {
                Ok(Fill::Moved(0)) => {
                    eof = true;
                    progressed = true;
                }
                Ok(Fill::Moved(n)) => {
                    in_pipe += n;
                    progressed = true;
                }
                // With an empty pipe the bytes arrived between splice and peek: try again.
                Ok(Fill::PipeFull) if in_pipe == 0 => tokio::task::yield_now().await,
                Ok(Fill::PipeFull) => pipe_full = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        if in_pipe > 0 {
            // The pipe holds bytes, so EAGAIN can only mean the socket's send buffer is full.
            match dst.try_io(Interest::WRITABLE, || {
                splice(pipe.read.as_raw_fd(), dst.as_raw_fd(), in_pipe)
            }) {
                Ok(n) => {
                    in_pipe -= n;
                    pipe_full = false;
                    moved += n as u64;
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(write_err(e)),
            }
        }
        if eof && in_pipe == 0 {
            SockRef::from(dst)
                .shutdown(Shutdown::Write)
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::NotConnected {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(write_err)?;
            return Ok(moved);
        }
        if progressed {
            // A stream that always has bytes never reaches an await below: give the worker back
            // once the task's coop budget is spent, or a bulk stream starves the other streams
            // on this worker (found by s2bench matrix: a session's small sync replies waited
            // behind a whole 64 MiB data stream).
            tokio::task::consume_budget().await;
        } else {
            let want_read = !eof && !pipe_full && in_pipe < pipe.capacity;
            let want_write = in_pipe > 0;
            tokio::select! {
                r = src.readable(), if want_read => r.map_err(read_err)?,
                r = dst.writable(), if want_write => r.map_err(write_err)?,
            }
        }
    }
}

/// Outcome of moving bytes from a socket into the pipe.
enum Fill {
    /// Bytes moved; 0 is end of stream.
    Moved(usize),
    /// The socket has data but the pipe took none.
    PipeFull,
}

/// Splices socket → pipe. EAGAIN is ambiguous here (empty socket, or a pipe out of slots), and
/// only the first may clear the socket's read readiness, so a 1-byte peek tells them apart.
fn fill_pipe(socket: RawFd, pipe: RawFd, len: usize) -> io::Result<Fill> {
    match splice(socket, pipe, len) {
        Ok(n) => Ok(Fill::Moved(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let mut byte = 0u8;
            // SAFETY: a 1-byte buffer we own; MSG_PEEK leaves the data queued.
            let n = unsafe {
                libc::recv(
                    socket,
                    (&raw mut byte).cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n > 0 { Ok(Fill::PipeFull) } else { Err(e) }
        }
        Err(e) => Err(e),
    }
}

/// A non-blocking pipe used as the splice buffer.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new(size: usize) -> io::Result<Self> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let want = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ takes an int argument; the fd is open.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
        let capacity = if got > 0 {
            got as usize
        } else {
            // Above /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE: keep the default.
            // SAFETY: F_GETPIPE_SZ takes no argument; the fd is open.
            let cur = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            tracing::debug!(
                wanted = size,
                got = cur,
                "pipe resize refused; using the default size"
            );
            if cur > 0 { cur as usize } else { 65536 }
        };
        Ok(Self {
            read,
            write,
            capacity,
        })
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // No SPLICE_F_MORE: on the socket side it means MSG_MORE, which corks a partial segment
    // until more bytes come or a 200 ms timer fires, and a relay never knows more is coming
    // (request/response apps waited 200 ms a hop; the kernel's autocorking batches anyway).
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both fds are open for the duration of the call; null offsets mean "use the file
    // position", which is what sockets and pipes require.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
