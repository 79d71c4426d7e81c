"""Calls one unary method of a Kairos scheduler from Python with grpcio, the way a
user's script would: TLS against the cluster's CA, a bearer token in the metadata,
and the message types taken from the server's reflection (no generated stubs).

    python call.py --addr localhost:7070 --ca ca.crt --token kairos_… \
        kairos.v1.JobService/ListJobs '{"pageSize": 10}'

Prints the answer as JSON on stdout. On a gRPC error prints `CODE: details` on
stderr and exits 3.
"""

import argparse
import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("method", help="package.Service/Method")
    parser.add_argument("request", nargs="?", default="{}", help="the request as JSON")
    args = parser.parse_args()

    with open(args.ca, "rb") as f:
        tls = grpc.ssl_channel_credentials(root_certificates=f.read())
    # Every call carries `authorization: Bearer TOKEN`, reflection's too (a Read).
    credentials = grpc.composite_channel_credentials(
        tls, grpc.access_token_call_credentials(args.token)
    )
    service, method = args.method.split("/", 1)
    with grpc.secure_channel(args.addr, credentials) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=args.timeout)
            database = ProtoReflectionDescriptorDatabase(channel)
            pool = descriptor_pool.DescriptorPool(database)
            methods = pool.FindServiceByName(service).methods_by_name
            if method not in methods:
                print(f"NOT_FOUND: {service} has no method {method}", file=sys.stderr)
                return 3
            desc = methods[method]
            request_type = message_factory.GetMessageClass(desc.input_type)
            reply_type = message_factory.GetMessageClass(desc.output_type)
            call = channel.unary_unary(
                f"/{service}/{method}",
                request_serializer=request_type.SerializeToString,
                response_deserializer=reply_type.FromString,
            )
            request = json_format.Parse(args.request, request_type())
            reply = call(request, timeout=args.timeout)
        except grpc.RpcError as e:
            print(f"{e.code().name}: {e.details()}", file=sys.stderr)
            return 3
    print(json_format.MessageToJson(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
