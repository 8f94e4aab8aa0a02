"""The sandbox's own copy of the Pub/Sub API's messages, in a private descriptor pool.

The sandbox shares no protocol code with the hooks, and two generated modules declaring the same
``eventbus.v1`` messages cannot both live in protobuf's default pool (the second import fails).
So ``pubsub_api.proto`` here is a second verbatim copy of Salesforce's file
(github.com/forcedotcom/pub-sub-api, CC0 1.0), and :data:`FILE_DESCRIPTOR` is its compiled form
(a serialized ``FileDescriptorProto``), generated once in this folder with grpcio-tools::

    python -m grpc_tools.protoc -I. --descriptor_set_out=pubsub_api.desc pubsub_api.proto

(the set's only file, base64-encoded below). :func:`messages` loads it into a pool of its own and
returns the message classes; the server registers its handlers by method name, so the wire
format and method paths (``/eventbus.v1.PubSub/Subscribe``...) are exactly the real service's.
Only protobuf is needed at run time.
"""

from __future__ import annotations

import base64
import functools
from types import SimpleNamespace

FILE_DESCRIPTOR_B64 = (
    "ChBwdWJzdWJfYXBpLnByb3RvEgtldmVudGJ1cy52MSLFAQoJVG9waWNJbmZvEh0KCnRvcGljX25hbWUYASABKAlSCXRvcGlj"
    "TmFtZRIfCgt0ZW5hbnRfZ3VpZBgCIAEoCVIKdGVuYW50R3VpZBIfCgtjYW5fcHVibGlzaBgDIAEoCFIKY2FuUHVibGlzaBIj"
    "Cg1jYW5fc3Vic2NyaWJlGAQgASgIUgxjYW5TdWJzY3JpYmUSGwoJc2NoZW1hX2lkGAUgASgJUghzY2hlbWFJZBIVCgZycGNf"
    "aWQYBiABKAlSBXJwY0lkIi0KDFRvcGljUmVxdWVzdBIdCgp0b3BpY19uYW1lGAEgASgJUgl0b3BpY05hbWUiNQoLRXZlbnRI"
    "ZWFkZXISEAoDa2V5GAEgASgJUgNrZXkSFAoFdmFsdWUYAiABKAxSBXZhbHVlIooBCg1Qcm9kdWNlckV2ZW50Eg4KAmlkGAEg"
    "ASgJUgJpZBIbCglzY2hlbWFfaWQYAiABKAlSCHNjaGVtYUlkEhgKB3BheWxvYWQYAyABKAxSB3BheWxvYWQSMgoHaGVhZGVy"
    "cxgEIAMoCzIYLmV2ZW50YnVzLnYxLkV2ZW50SGVhZGVyUgdoZWFkZXJzIl4KDUNvbnN1bWVyRXZlbnQSMAoFZXZlbnQYASAB"
    "KAsyGi5ldmVudGJ1cy52MS5Qcm9kdWNlckV2ZW50UgVldmVudBIbCglyZXBsYXlfaWQYAiABKAxSCHJlcGxheUlkIn8KDVB1"
    "Ymxpc2hSZXN1bHQSGwoJcmVwbGF5X2lkGAEgASgMUghyZXBsYXlJZBIoCgVlcnJvchgCIAEoCzISLmV2ZW50YnVzLnYxLkVy"
    "cm9yUgVlcnJvchInCg9jb3JyZWxhdGlvbl9rZXkYAyABKAlSDmNvcnJlbGF0aW9uS2V5IkUKBUVycm9yEioKBGNvZGUYASAB"
    "KA4yFi5ldmVudGJ1cy52MS5FcnJvckNvZGVSBGNvZGUSEAoDbXNnGAIgASgJUgNtc2ci0gEKDEZldGNoUmVxdWVzdBIdCgp0"
    "b3BpY19uYW1lGAEgASgJUgl0b3BpY05hbWUSPgoNcmVwbGF5X3ByZXNldBgCIAEoDjIZLmV2ZW50YnVzLnYxLlJlcGxheVBy"
    "ZXNldFIMcmVwbGF5UHJlc2V0EhsKCXJlcGxheV9pZBgDIAEoDFIIcmVwbGF5SWQSIwoNbnVtX3JlcXVlc3RlZBgEIAEoBVIM"
    "bnVtUmVxdWVzdGVkEiEKDGF1dGhfcmVmcmVzaBgFIAEoCVILYXV0aFJlZnJlc2giuAEKDUZldGNoUmVzcG9uc2USMgoGZXZl"
    "bnRzGAEgAygLMhouZXZlbnRidXMudjEuQ29uc3VtZXJFdmVudFIGZXZlbnRzEigKEGxhdGVzdF9yZXBsYXlfaWQYAiABKAxS"
    "DmxhdGVzdFJlcGxheUlkEhUKBnJwY19pZBgDIAEoCVIFcnBjSWQSMgoVcGVuZGluZ19udW1fcmVxdWVzdGVkGAQgASgFUhNw"
    "ZW5kaW5nTnVtUmVxdWVzdGVkIiwKDVNjaGVtYVJlcXVlc3QSGwoJc2NoZW1hX2lkGAEgASgJUghzY2hlbWFJZCJhCgpTY2hl"
    "bWFJbmZvEh8KC3NjaGVtYV9qc29uGAEgASgJUgpzY2hlbWFKc29uEhsKCXNjaGVtYV9pZBgCIAEoCVIIc2NoZW1hSWQSFQoG"
    "cnBjX2lkGAMgASgJUgVycGNJZCKGAQoOUHVibGlzaFJlcXVlc3QSHQoKdG9waWNfbmFtZRgBIAEoCVIJdG9waWNOYW1lEjIK"
    "BmV2ZW50cxgCIAMoCzIaLmV2ZW50YnVzLnYxLlByb2R1Y2VyRXZlbnRSBmV2ZW50cxIhCgxhdXRoX3JlZnJlc2gYAyABKAlS"
    "C2F1dGhSZWZyZXNoInsKD1B1Ymxpc2hSZXNwb25zZRI0CgdyZXN1bHRzGAEgAygLMhouZXZlbnRidXMudjEuUHVibGlzaFJl"
    "c3VsdFIHcmVzdWx0cxIbCglzY2hlbWFfaWQYAiABKAlSCHNjaGVtYUlkEhUKBnJwY19pZBgDIAEoCVIFcnBjSWQiiAIKE01h"
    "bmFnZWRGZXRjaFJlcXVlc3QSJwoPc3Vic2NyaXB0aW9uX2lkGAEgASgJUg5zdWJzY3JpcHRpb25JZBIlCg5kZXZlbG9wZXJf"
    "bmFtZRgCIAEoCVINZGV2ZWxvcGVyTmFtZRIjCg1udW1fcmVxdWVzdGVkGAMgASgFUgxudW1SZXF1ZXN0ZWQSIQoMYXV0aF9y"
    "ZWZyZXNoGAQgASgJUgthdXRoUmVmcmVzaBJZChhjb21taXRfcmVwbGF5X2lkX3JlcXVlc3QYBSABKAsyIC5ldmVudGJ1cy52"
    "MS5Db21taXRSZXBsYXlSZXF1ZXN0UhVjb21taXRSZXBsYXlJZFJlcXVlc3QiiwIKFE1hbmFnZWRGZXRjaFJlc3BvbnNlEjIK"
    "BmV2ZW50cxgBIAMoCzIaLmV2ZW50YnVzLnYxLkNvbnN1bWVyRXZlbnRSBmV2ZW50cxIoChBsYXRlc3RfcmVwbGF5X2lkGAIg"
    "ASgMUg5sYXRlc3RSZXBsYXlJZBIVCgZycGNfaWQYAyABKAlSBXJwY0lkEjIKFXBlbmRpbmdfbnVtX3JlcXVlc3RlZBgEIAEo"
    "BVITcGVuZGluZ051bVJlcXVlc3RlZBJKCg9jb21taXRfcmVzcG9uc2UYBSABKAsyIS5ldmVudGJ1cy52MS5Db21taXRSZXBs"
    "YXlSZXNwb25zZVIOY29tbWl0UmVzcG9uc2UiXgoTQ29tbWl0UmVwbGF5UmVxdWVzdBIqChFjb21taXRfcmVxdWVzdF9pZBgB"
    "IAEoCVIPY29tbWl0UmVxdWVzdElkEhsKCXJlcGxheV9pZBgCIAEoDFIIcmVwbGF5SWQirAEKFENvbW1pdFJlcGxheVJlc3Bv"
    "bnNlEioKEWNvbW1pdF9yZXF1ZXN0X2lkGAEgASgJUg9jb21taXRSZXF1ZXN0SWQSGwoJcmVwbGF5X2lkGAIgASgMUghyZXBs"
    "YXlJZBIoCgVlcnJvchgDIAEoCzISLmV2ZW50YnVzLnYxLkVycm9yUgVlcnJvchIhCgxwcm9jZXNzX3RpbWUYBCABKANSC3By"
    "b2Nlc3NUaW1lKjEKCUVycm9yQ29kZRILCgdVTktOT1dOEAASCwoHUFVCTElTSBABEgoKBkNPTU1JVBACKjQKDFJlcGxheVBy"
    "ZXNldBIKCgZMQVRFU1QQABIMCghFQVJMSUVTVBABEgoKBkNVU1RPTRACMsQDCgZQdWJTdWISRgoJU3Vic2NyaWJlEhkuZXZl"
    "bnRidXMudjEuRmV0Y2hSZXF1ZXN0GhouZXZlbnRidXMudjEuRmV0Y2hSZXNwb25zZSgBMAESQAoJR2V0U2NoZW1hEhouZXZl"
    "bnRidXMudjEuU2NoZW1hUmVxdWVzdBoXLmV2ZW50YnVzLnYxLlNjaGVtYUluZm8SPQoIR2V0VG9waWMSGS5ldmVudGJ1cy52"
    "MS5Ub3BpY1JlcXVlc3QaFi5ldmVudGJ1cy52MS5Ub3BpY0luZm8SRAoHUHVibGlzaBIbLmV2ZW50YnVzLnYxLlB1Ymxpc2hS"
    "ZXF1ZXN0GhwuZXZlbnRidXMudjEuUHVibGlzaFJlc3BvbnNlEk4KDVB1Ymxpc2hTdHJlYW0SGy5ldmVudGJ1cy52MS5QdWJs"
    "aXNoUmVxdWVzdBocLmV2ZW50YnVzLnYxLlB1Ymxpc2hSZXNwb25zZSgBMAESWwoQTWFuYWdlZFN1YnNjcmliZRIgLmV2ZW50"
    "YnVzLnYxLk1hbmFnZWRGZXRjaFJlcXVlc3QaIS5ldmVudGJ1cy52MS5NYW5hZ2VkRmV0Y2hSZXNwb25zZSgBMAFCYQogY29t"
    "LnNhbGVzZm9yY2UuZXZlbnRidXMucHJvdG9idWZCC1B1YlN1YlByb3RvUAFaLmdpdGh1Yi5jb20vZGV2ZWxvcGVyZm9yY2Uv"
    "cHViLXN1Yi1hcGkvZ28vcHJvdG9iBnByb3RvMw=="
)
"""``pubsub_api.proto`` compiled: a serialized ``google.protobuf.FileDescriptorProto``, base64."""

PACKAGE = "eventbus.v1"
SERVICE = "eventbus.v1.PubSub"


@functools.cache
def messages() -> SimpleNamespace:
    """The message classes and enums of ``pubsub_api.proto`` (``FetchRequest``, ``FetchResponse``,
    ``ReplayPreset``...), built once from :data:`FILE_DESCRIPTOR_B64` in a private pool."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(FILE_DESCRIPTOR_B64))
    file = pool.Add(proto)
    found = {}
    for message in proto.message_type:
        descriptor = pool.FindMessageTypeByName(f"{PACKAGE}.{message.name}")
        found[message.name] = message_factory.GetMessageClass(descriptor)
    for enum in proto.enum_type:
        found[enum.name] = {value.name: value.number for value in enum.value}
    found["DESCRIPTOR"] = file
    return SimpleNamespace(**found)
