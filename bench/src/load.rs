//! The bulk source and sink.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What the sink saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SinkReport {
    pub(crate) bytes: u64,
    /// Connect to EOF.
    pub(crate) secs: f64,
    /// Connect to the first byte.
    pub(crate) first_byte_secs: Option<f64>,
}

pub(crate) fn source(listen: SocketAddr, bytes: u64, msg_size: usize) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    println!("READY");
    std::io::stdout().flush()?;
    let (mut s, _) = listener.accept()?;
    let msg = vec![0x5a_u8; msg_size.max(1)];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).map_or(msg.len(), |l| l.min(msg.len()));
        s.write_all(&msg[..n])?;
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write)?;
    // Wait for the reader to finish so the close is clean.
    let mut b = [0u8; 64];
    let _ = s.read(&mut b);
    Ok(())
}

pub(crate) fn sink(connect: SocketAddr, buf: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let start = Instant::now();
    let mut s = loop {
        match TcpStream::connect(connect) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to {connect}")),
        }
    };
    let start = if start.elapsed() > Duration::from_millis(100) {
        Instant::now()
    } else {
        start
    };
    let mut b = vec![0u8; buf.max(1)];
    let (mut total, mut first) = (0u64, None);
    loop {
        let n = s.read(&mut b)?;
        if n == 0 {
            break;
        }
        if first.is_none() {
            first = Some(start.elapsed().as_secs_f64());
        }
        total += n as u64;
    }
    let report = SinkReport {
        bytes: total,
        secs: start.elapsed().as_secs_f64(),
        first_byte_secs: first,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
