"""Generated protobuf messages and gRPC stubs of the `gloss.v1` API.

The `*_pb2.py`, `*_pb2.pyi` and `*_pb2_grpc.py` modules here are made from the repository's
`proto/gloss/v1/*.proto` when the package is built (see `setup.py`); they are not in version
control. Import them by file, e.g. `from gloss_client.v1 import datasets_pb2`.
"""
