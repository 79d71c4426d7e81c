"""The generated protobuf messages and gRPC stubs of ``kairos.v1`` (job, execution,
cluster, token), under short names:

    from kairos_sdk import pb
    pb.job_pb2.Job(name="a")
    pb.token_pb2_grpc.TokenServiceStub(channel)

They are made by ``sdk/python/generate`` and committed; see the README.
"""

from ._pb import (  # noqa: F401
    cluster_pb2,
    cluster_pb2_grpc,
    execution_pb2,
    execution_pb2_grpc,
    job_pb2,
    job_pb2_grpc,
    token_pb2,
    token_pb2_grpc,
)
