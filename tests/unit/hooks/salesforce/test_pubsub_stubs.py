"""The committed proto, its generated stubs and the sandbox's own copy stay in step; the provider
imports without the ``cdc`` extra and says what to install when CDC is used without it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

import airflow_provider_b1
from airflow_provider_b1.hooks.salesforce.pubsub import pubsub_api_pb2, pubsub_api_pb2_grpc
from airflow_provider_b1.sandbox.salesforce.pubsub_proto import messages

PACKAGE = Path(airflow_provider_b1.__file__).parent
HOOK_PROTO = PACKAGE / "hooks/salesforce/pubsub/pubsub_api.proto"
SANDBOX_PROTO = PACKAGE / "sandbox/salesforce/pubsub_proto/pubsub_api.proto"


def _compiled(tmp_path: Path, relative: str) -> descriptor_pb2.FileDescriptorProto:
    pytest.importorskip("grpc_tools")
    target = tmp_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(HOOK_PROTO, target)
    out = tmp_path / "set.desc"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--descriptor_set_out={out}", relative],
        check=True,
    )
    return _plain(descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0])


def _plain(proto: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """Without ``json_name``: protoc writes it into descriptor sets, Python stubs leave it out."""

    def clear(messages) -> None:
        for message in messages:
            for field in message.field:
                field.ClearField("json_name")
            clear(message.nested_type)

    clear(proto.message_type)
    return proto


def test_the_sandbox_copy_of_the_proto_is_the_same_file():
    assert SANDBOX_PROTO.read_bytes() == HOOK_PROTO.read_bytes()
    assert b"package eventbus.v1;" in HOOK_PROTO.read_bytes()


def test_the_committed_stubs_are_the_proto_compiled(tmp_path):
    compiled = _compiled(tmp_path, "airflow_provider_b1/hooks/salesforce/pubsub/pubsub_api.proto")
    committed = _plain(descriptor_pb2.FileDescriptorProto.FromString(pubsub_api_pb2.DESCRIPTOR.serialized_pb))
    assert committed == compiled
    service = pubsub_api_pb2.DESCRIPTOR.services_by_name["PubSub"]
    assert {"Subscribe", "GetTopic", "GetSchema", "Publish", "PublishStream"} <= set(service.methods_by_name)
    assert hasattr(pubsub_api_pb2_grpc, "PubSubStub")


def test_the_sandbox_descriptor_is_the_proto_compiled(tmp_path):
    compiled = _compiled(tmp_path, "pubsub_api.proto")
    sandbox = messages().DESCRIPTOR
    proto = descriptor_pb2.FileDescriptorProto()
    sandbox.CopyToProto(proto)
    assert _plain(proto) == compiled
    # Both sets of messages live side by side (the sandbox's are in a pool of their own) and
    # speak the same wire format.
    request = pubsub_api_pb2.FetchRequest(
        topic_name="/data/AccountChangeEvent", replay_preset=2, num_requested=5
    )
    assert messages().FetchRequest.FromString(request.SerializeToString()).num_requested == 5


def test_the_provider_imports_without_the_cdc_extra_and_names_it_when_cdc_is_used():
    script = textwrap.dedent(
        """
        import sys

        class NoCdc:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("grpc", "fastavro", "grpc_tools"):
                    raise ImportError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoCdc())
        import airflow_provider_b1.hooks.salesforce.pubsub as pubsub
        import airflow_provider_b1.triggers.salesforce
        import airflow_provider_b1.sensors.salesforce
        from airflow_provider_b1.hooks.salesforce.pubsub.client import SalesforcePubSubClient
        from airflow_provider_b1.hooks.salesforce.pubsub import CdcDependencyError

        client = SalesforcePubSubClient(sessions=object())
        client._settings = object()
        try:
            client.stub
        except CdcDependencyError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "refused:" in done.stdout
    assert "pip install 'airflow-provider-b1[cdc]'" in done.stdout
