"""A real gRPC server and client (grpcio) for umbra's tests, with no generated code: the
service is registered through grpc's generic handlers and its messages are raw bytes.

    python3 grpc_fixture.py serve TAG      prints the port, then serves /umbra.Echo/{Say,Fail}
    python3 grpc_fixture.py call TARGET METHOD PAYLOAD_HEX
                                           one unary call; prints its outcome as JSON

`Say` answers b"\\xff\\xfe" + request (+ b":" + TAG when the request starts with b"tag"), so
two servers answer alike unless asked to differ, and the answer is never UTF-8 (compared as
binary). Its trailing metadata carries `x-served-by: TAG`. `Fail` aborts with NOT_FOUND.
"""

import json
import sys
from concurrent import futures

import grpc


def handlers(tag):
    def say(request, context):
        context.set_trailing_metadata((("x-served-by", tag),))
        reply = b"\xff\xfe" + request
        if request.startswith(b"tag"):
            reply += b":" + tag.encode()
        return reply

    def fail(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + tag)

    return grpc.method_handlers_generic_handler(
        "umbra.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )


def serve(tag):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handlers(tag),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # Ends with the test: its stdin closes when the test drops the process handle.
    sys.stdin.read()
    server.stop(0)


def call(target, method, payload_hex):
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary("/umbra.Echo/" + method)
        try:
            reply, info = stub.with_call(bytes.fromhex(payload_hex), timeout=10)
            out = {
                "code": info.code().name,
                "reply_hex": reply.hex(),
                "trailers": dict(info.trailing_metadata() or ()),
            }
        except grpc.RpcError as e:
            out = {
                "code": e.code().name,
                "details": e.details(),
                "trailers": dict(e.trailing_metadata() or ()),
            }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        call(sys.argv[2], sys.argv[3], sys.argv[4])
