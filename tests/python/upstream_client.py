"""An upstream-style SciStream client in Python grpcio, generated from the upstream wire
definition, driving an s2cs the way upstream `s2uc inbound-request` does: `req` in a thread,
the hello 0.5 s later, then `update` and `release`, with the token as raw `authorization`
metadata. Prints one JSON object with what it saw; the Rust test checks it."""

import argparse
import json
import os
import sys
import tempfile
import threading
import time

import grpc
from grpc_tools import protoc


def load_stubs():
    here = os.path.dirname(os.path.abspath(__file__))
    out = tempfile.mkdtemp(prefix="s2-pystubs-")
    rc = protoc.main([
        "protoc", f"-I{here}", f"--python_out={out}", f"--grpc_python_out={out}",
        os.path.join(here, "scistream_upstream.proto"),
    ])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    import scistream_upstream_pb2 as pb  # noqa: E402
    import scistream_upstream_pb2_grpc as pbg  # noqa: E402
    return pb, pbg


def code_of(call):
    try:
        call()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--s2cs", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--uid", required=True)
    args = ap.parse_args()
    pb, pbg = load_stubs()
    token = open(args.token_file).read().strip()
    if args.cert:
        creds = grpc.ssl_channel_credentials(open(args.cert, "rb").read())
        channel = grpc.secure_channel(args.s2cs, creds)
    else:
        channel = grpc.insecure_channel(args.s2cs)
    stub = pbg.ControlStub(channel)
    md = [("authorization", token)]
    result = {}

    def do_req():
        try:
            result["req"] = stub.req(pb.Request(uid=args.uid, role="PROD", num_conn=3, rate=10000),
                                     metadata=md, timeout=20)
        except grpc.RpcError as e:
            result["req_error"] = e.code().name

    t = threading.Thread(target=do_req)
    t.start()
    time.sleep(0.5)
    hello = stub.hello(pb.Hello(uid=args.uid, role="PROD",
                                prod_listeners=["127.0.0.1:5074", "127.0.0.1:5075"]),
                       metadata=md, timeout=10)
    t.join(20)
    if "req" not in result:
        sys.exit(f"req failed: {result}")
    resp = result["req"]
    upd = stub.update(pb.UpdateTargets(uid=args.uid, remote_listeners=list(resp.prod_listeners),
                                       role="PROD"), metadata=md, timeout=10)
    out = {
        "hello_message": hello.message,
        "req_listeners": list(resp.listeners),
        "req_prod_listeners": list(resp.prod_listeners),
        "update_listeners": list(upd.listeners),
        "update_prod_listeners": list(upd.prod_listeners),
        "release_unknown": code_of(lambda: stub.release(pb.Release(uid="no-such-uid"), metadata=md, timeout=10)),
        "release_no_token": code_of(lambda: stub.release(pb.Release(uid=args.uid), timeout=10)),
        "release_bearer": code_of(lambda: stub.release(
            pb.Release(uid=args.uid), metadata=[("authorization", "Bearer " + token)], timeout=10)),
        "release_again": code_of(lambda: stub.release(pb.Release(uid=args.uid), metadata=md, timeout=10)),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
