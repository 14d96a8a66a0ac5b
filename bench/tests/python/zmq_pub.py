#!/usr/bin/env python3
"""A publisher of the SciStream paper's pub/sub benchmark protocol, written with pyzmq.

Our own implementation from the protocol description (not the paper's code), used by
bench/tests/pyzmq_interop.rs to check `s2bench zsub` against an independent peer:
REP on --sync answers the sync request with "<size>, <samples>", PUB on --port (HWM 0) sends
`samples` messages "SciStream:" + "a" * size, then "SciStream:STOP", then REP answers
"FIN" with "FIN_ACK".
Port 0 picks a free port; the READY line names both ports ("READY <port> <sync>").
"""
import argparse
import sys

import zmq


def bind(sock, ip, port):
    """Binds `sock` to ip:port (a free port when 0) and returns the port."""
    if port == 0:
        return sock.bind_to_random_port(f"tcp://{ip}")
    sock.bind(f"tcp://{ip}:{port}")
    return port


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=50000, help="data (PUB) port")
    p.add_argument("--sync", type=int, default=51000, help="sync (REP) port")
    p.add_argument("--size", type=int, default=1024, help="payload bytes per message")
    p.add_argument("--samples", type=int, default=1000, help="messages to send")
    p.add_argument("--bind-ip", default="127.0.0.1", help="address to bind")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for SYNC and FIN")
    a = p.parse_args()

    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    sync = bind(rep, a.bind_ip, a.sync)
    pub = ctx.socket(zmq.PUB)
    pub.set_hwm(0)
    port = bind(pub, a.bind_ip, a.port)
    rep.setsockopt(zmq.RCVTIMEO, int(a.timeout * 1000))
    print(f"READY {port} {sync}", flush=True)

    rep.recv()
    rep.send_string(f"{a.size}, {a.samples}")
    msg = b"SciStream:" + b"a" * a.size
    for _ in range(a.samples):
        pub.send(msg)
    pub.send(b"SciStream:STOP")
    fin = rep.recv()
    if fin != b"FIN":
        print(f"expected FIN, got {fin!r}", file=sys.stderr)
        return 1
    rep.send(b"FIN_ACK")
    pub.setsockopt(zmq.LINGER, 1000)
    rep.setsockopt(zmq.LINGER, 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
