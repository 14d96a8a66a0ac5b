//! Every socket syscall the sockmap engine makes, in one place.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` describe a writable int.
    check(unsafe { libc::getsockopt(fd, level, opt, (&raw mut v).cast(), &mut len) })?;
    Ok(v)
}

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: an int option value of the right size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

/// The kernel's socket cookie: the key of the socket in the maps.
pub(crate) fn cookie(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut v: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes of the sizes passed.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut v).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// Sets the send buffer past `wmem_max` when allowed (`SO_SNDBUFFORCE`): a redirect target's
/// send buffer sets the splice's throughput, because the kernel retries a full one only after a
/// jiffy. Returns the size the kernel reports.
pub(crate) fn force_sndbuf(fd: &impl AsRawFd, bytes: usize) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    let v = libc::c_int::try_from(bytes / 2).unwrap_or(libc::c_int::MAX);
    if set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, v).is_err() {
        set_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, v)?;
    }
    Ok(usize::try_from(get_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?).unwrap_or(0))
}

/// The kernel's TCP state numbers we act on (include/net/tcp_states.h).
pub(crate) const TCP_CLOSE: u8 = 7;

/// What TCP_INFO tells about one socket.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TcpCounters {
    pub(crate) state: u8,
    /// Sequence space received, including a received FIN.
    pub(crate) bytes_received: u64,
    /// Sequence space acknowledged by the peer, including our acked FIN.
    pub(crate) bytes_acked: u64,
}

pub(crate) fn tcp_counters(fd: &impl AsRawFd) -> io::Result<TcpCounters> {
    // SAFETY: tcp_info is plain data; zeroed is valid, and the kernel writes at most `len`.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info`/`len` describe a writable buffer.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    })?;
    Ok(TcpCounters {
        state: info.tcpi_state,
        bytes_received: info.tcpi_bytes_received,
        bytes_acked: info.tcpi_bytes_acked,
    })
}

/// Bytes in the send queue not yet acknowledged (SIOCOUTQ).
pub(crate) fn unsent(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut v: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut v) })?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Bytes written into the socket's send path so far: acknowledged plus still queued.
pub(crate) fn written(fd: &impl AsRawFd) -> io::Result<(TcpCounters, u64)> {
    let c = tcp_counters(fd)?;
    Ok((c, c.bytes_acked + unsent(fd)?))
}

/// A non-blocking read: `Ok(None)` when nothing is there now.
pub(crate) fn recv_now(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is writable for its length.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    nonblocking(n)
}

/// A non-blocking write: `Ok(None)` when the send buffer is full.
pub(crate) fn send_now(fd: &impl AsRawFd, buf: &[u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is readable for its length.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    nonblocking(n)
}

fn nonblocking(n: isize) -> io::Result<Option<usize>> {
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
        _ => Err(e),
    }
}

/// poll(2); an interrupted wait reports no events.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<()> {
    for p in fds.iter_mut() {
        p.revents = 0;
    }
    // SAFETY: `fds` is a valid, writable array of pollfds of the given length.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// The pending socket error (SO_ERROR, which also clears it), e.g. ECONNRESET.
pub(crate) fn socket_error(fd: &impl AsRawFd) -> Option<io::Error> {
    match get_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR) {
        Ok(0) | Err(_) => None,
        Ok(v) => Some(io::Error::from_raw_os_error(v)),
    }
}

/// Makes the coming close send RST instead of FIN.
pub(crate) fn linger_zero(fd: &impl AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a linger struct of the right size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}
