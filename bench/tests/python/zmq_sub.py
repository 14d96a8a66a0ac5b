#!/usr/bin/env python3
"""A subscriber of the SciStream paper's pub/sub benchmark protocol, written with pyzmq.

Our own implementation from the protocol description (not the paper's code), used by
bench/tests/pyzmq_interop.rs to check `s2bench zpub` against an independent peer. Connects
SUB (HWM 0, prefix "SciStream") before SYNC, sends "SYNC" on REQ, parses "<size>, <samples>",
counts messages until one whose byte 10 is "S", sends "FIN", waits for "FIN_ACK", and prints
one JSON line: {"size", "samples_expected", "samples_received", "bad_length", "fin_ack"}.
"""
import argparse
import json
import sys
import time

import zmq


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--remote-host", default="127.0.0.1", help="publisher host")
    p.add_argument("--remote-port", type=int, default=50000, help="publisher data port")
    p.add_argument("--sync", type=int, default=51000, help="publisher sync port")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds without a message to give up")
    a = p.parse_args()

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.set_hwm(0)
    sub.setsockopt(zmq.SUBSCRIBE, b"SciStream")
    sub.setsockopt(zmq.RCVTIMEO, int(a.timeout * 1000))
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://{a.remote_host}:{a.remote_port}")
    # Slow joiner: give the subscription time to reach the publisher before SYNC.
    time.sleep(0.5)
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.RCVTIMEO, int(a.timeout * 1000))
    req.setsockopt(zmq.LINGER, 0)
    req.connect(f"tcp://{a.remote_host}:{a.sync}")
    req.send(b"SYNC")
    size, samples = (int(x) for x in req.recv().decode().split(","))

    count, bad_length = 0, 0
    while True:
        msg = sub.recv()
        if len(msg) > 10 and msg[10:11] == b"S":
            break
        count += 1
        if len(msg) != size + 10:
            bad_length += 1
    req.send(b"FIN")
    fin_ack = req.recv() == b"FIN_ACK"
    print(json.dumps({
        "size": size,
        "samples_expected": samples,
        "samples_received": count,
        "bad_length": bad_length,
        "fin_ack": fin_ack,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
