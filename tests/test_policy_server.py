"""The policy server and its client: openpi's wire protocol, batching, bad requests, tokens, timeouts."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from contract.embodiments import ACTION_KEY, STATE_KEY
from contract.spec import ObservationSpec
from policies.action_queue import ExecutionConfig
from policies.remote import RemotePolicy
from policies.server import PolicyServer, ServerThread
from policies.vla_policy import VLAPolicy
from policies.wire import WireError, packb, unpackb
from rollouts.cli import main
from vla.data.normalize import Normalizer
from vla.data.synthetic import write_synthetic_dataset
from vla.train.cli import parse_args
from vla.train.preflight import plan_run
from vla.train.workspace import Workspace


def _stats(dim, lo, hi):
    lo, hi = np.full(dim, lo, float), np.full(dim, hi, float)
    return {"min": lo.tolist(), "max": hi.tolist(), "mean": ((lo + hi) / 2).tolist(), "std": ((hi - lo) / 4).tolist(),
            "q01": lo.tolist(), "q99": hi.tolist()}


NORMALIZER = Normalizer("robocasa_panda_omron", {STATE_KEY: _stats(16, -2.0, 2.0), ACTION_KEY: _stats(12, -0.5, 0.5)})


class EchoModel(torch.nn.Module):
    """Every action dim of step t = normalized state[2] * (t + 1) / 16: replies can be traced to their requests."""

    def __init__(self, delay_s=0.0, fail=False):
        super().__init__()
        self.batch_sizes, self.delay_s, self.fail = [], delay_s, fail

    def predict_action_chunk(self, batch):
        self.batch_sizes.append(len(batch["state"]))
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        steps = torch.arange(1, 17, dtype=torch.float32) / 16
        return batch["state"][:, 2, None, None] * steps[None, :, None] * torch.ones(1, 1, 12)


def _policy(**kw):
    return VLAPolicy(EchoModel(**kw), NORMALIZER, spec=ObservationSpec(image_size=32),
                     source="runs/tiny/checkpoint-000002", demo_seeds={"TurnOffMicrowave": [3, 4]})


def _obs(state2=1.0, size=32):
    state = np.zeros(16, np.float32)
    state[2] = state2
    obs = {f"observation.images.{c}": np.full((size, size, 3), 7, np.uint8) for c in ("left", "right", "wrist")}
    return {**obs, STATE_KEY: state, "task": "press the stop button on the microwave"}


@pytest.fixture
def served():
    """A server on a free loopback port for one test: yields (server, url)."""
    servers = []

    def start(policy=None, **kw):
        server = PolicyServer(policy or _policy(), port=0, **kw)
        thread = ServerThread(server)
        thread.__enter__()
        servers.append(thread)
        return server, f"ws://127.0.0.1:{server.port}"

    yield start
    for thread in servers:
        thread.__exit__(None, None, None)


def test_remote_policy_matches_the_local_one(served):
    server, url = served()
    with RemotePolicy(url) as remote:
        assert remote.metadata["embodiment"] == "robocasa_panda_omron" and remote.chunk_size == 16
        assert remote.action_dim == 12 and remote.cameras == ("left", "right", "wrist") and remote.image_size == 32
        assert remote.demo_seeds == {"TurnOffMicrowave": [3, 4]} and "checkpoint-000002" in remote.source
        obs = _obs(state2=1.0)
        np.testing.assert_allclose(remote.predict_action_chunk(obs), _policy().predict_action_chunk(obs))
        batch = {k: [v, v] if isinstance(v, str) else np.stack([v, v]) for k, v in obs.items()}
        assert remote.predict_action_chunk(batch).shape == (2, 16, 12)
        assert remote.last_timing["batch_size"] == 2 and remote.last_timing["infer_ms"] >= 0
        remote.check_compatible(ObservationSpec(image_size=32))
        with pytest.raises(ValueError, match="is for embodiment 'robocasa_panda_omron'; the env is 'franka_panda'"):
            remote.check_compatible(ObservationSpec(embodiment="franka_panda", image_size=32))
        with pytest.raises(ValueError, match="was trained on 32px images; the env renders 64px$"):
            remote.check_compatible(ObservationSpec(image_size=64))


def test_select_action_runs_the_queue_on_the_client(served):
    server, url = served()
    with RemotePolicy(url, execution=ExecutionConfig(execute_steps=4)) as remote:
        actions = [remote.select_action(_obs()) for _ in range(6)]
        assert server.model_calls == 2  # steps 0 and 4
        assert actions[3][0] == pytest.approx(0.25 * 4 / 16) and actions[4][0] == pytest.approx(0.25 / 16)


def test_openpi_client_connects_and_infers(served):
    openpi = pytest.importorskip("openpi_client.websocket_client_policy")
    server, url = served()
    client = openpi.WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    assert client.get_server_metadata()["action_dim"] == 12
    reply = client.infer(_obs(state2=-1.0))
    assert reply["actions"].shape == (16, 12) and reply["actions"][15, 0] == pytest.approx(-0.25)
    with pytest.raises(RuntimeError, match="bad request: observation lacks observation.images.wrist"):
        client.infer({k: v for k, v in _obs().items() if k != "observation.images.wrist"})
    assert client.infer(_obs())["actions"].shape == (16, 12)  # the same connection still works


def test_concurrent_requests_share_one_model_call(served):
    server, url = served(batch_wait_s=0.3)
    clients = [RemotePolicy(url) for _ in range(4)]
    results = {}

    def ask(i):
        results[i] = clients[i].predict_action_chunk(_obs(state2=0.4 * (i + 1)))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert server.policy.model.batch_sizes == [4] and server.model_calls == 1
    for i in range(4):  # each reply is its own request's: state 0.4 (i+1) -> normalized 0.2 (i+1) -> x 0.5 at step 16
        assert results[i][15, 0] == pytest.approx(0.1 * (i + 1), abs=1e-6)
        clients[i].close()


def _raw_frames(url):
    ws = connect(url, compression=None)
    unpackb(ws.recv(timeout=5))  # metadata
    return ws


ARRAY = {b"__ndarray__": True, b"data": b"\0" * 16 * 4, b"dtype": "<f4", b"shape": [16]}
BAD_REQUESTS = [
    ("text frame", "hello", "expected a binary msgpack frame; got a text frame"),
    ("garbage", b"\xc1\xff\x00", "not a valid msgpack frame"),
    ("not a map", msgpack.packb([1, 2, 3]), "expected a map of string keys"),
    ("object dtype", msgpack.packb({"s": {**ARRAY, b"dtype": "|O"}}), "array dtype '|O' is not allowed"),
    ("byte count", msgpack.packb({"s": {**ARRAY, b"shape": [1000, 1000]}}), "needs 4000000 bytes; got 64"),
    ("unknown dtype", msgpack.packb({"s": {**ARRAY, b"dtype": "zz"}}), "unknown array dtype 'zz'"),
    ("missing keys", packb({STATE_KEY: np.zeros(16, np.float32)}), "observation lacks observation.images.left"),
    ("nan state", packb({**_obs(), STATE_KEY: np.full(16, np.nan, np.float32)}), "observation.state contains NaN"),
    ("float image", packb({**_obs(), "observation.images.left": np.zeros((32, 32, 3), np.float32)}),
     "expected uint8 HxWx3 image"),
    ("task type", packb({**_obs(), "task": {"a": 1}}), "task: expected the instruction string"),
]


def test_bad_requests_get_one_line_errors_and_the_connection_stays_usable(served):
    server, url = served()
    ws = _raw_frames(url)
    for name, frame, message in BAD_REQUESTS:
        ws.send(frame)
        reply = ws.recv(timeout=5)
        assert isinstance(reply, str) and reply.startswith("error: bad request: ") and message in reply, name
        assert "\n" not in reply, name
    ws.send(packb(_obs()))
    assert unpackb(ws.recv(timeout=5))["actions"].shape == (16, 12)
    assert server.bad_requests == len(BAD_REQUESTS) and server.model_calls == 1
    ws.close()


def test_too_many_rows_in_one_request_is_refused(served):
    server, url = served(max_batch=2)
    batch = {k: [v] * 3 if isinstance(v, str) else np.stack([v] * 3) for k, v in _obs().items()}
    with RemotePolicy(url) as remote, pytest.raises(RuntimeError, match="a request may carry 1..2 observations; got 3"):
        remote.predict_action_chunk(batch)


def test_oversized_frame_closes_that_connection_only(served):
    server, url = served(max_request_bytes=64 * 1024)
    ws = _raw_frames(url)
    ws.send(packb(_obs(size=256)))  # ~590 KB
    with pytest.raises(ConnectionClosedError) as info:
        ws.recv(timeout=5)
    assert info.value.rcvd.code == 1009
    with RemotePolicy(url) as remote:  # the server is still up; the client refuses before sending
        assert remote.predict_action_chunk(_obs()).shape == (16, 12)
        with pytest.raises(ValueError, match=r"exceeds the server's limit of 65536 bytes"):
            remote.predict_action_chunk(_obs(size=256))


def test_health_check_and_token(served):
    server, url = served(token="s3cret")
    port = server.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
        assert reply.status == 200 and reply.read() == b"OK\n"
    with pytest.raises(ConnectionError, match=r"refused the connection \(HTTP 401\); set XVR_POLICY_TOKEN"):
        RemotePolicy(url, token="")
    with pytest.raises(ConnectionError, match=r"HTTP 401"):
        RemotePolicy(url, token="wrong")
    with RemotePolicy(url, token="s3cret") as remote:
        assert remote.predict_action_chunk(_obs()).shape == (16, 12)
    openpi = pytest.importorskip("openpi_client.websocket_client_policy")
    assert openpi.WebsocketClientPolicy("127.0.0.1", port, api_key="s3cret").infer(_obs())["actions"].shape == (16, 12)


def test_a_failing_policy_is_an_error_reply_not_a_dead_server(served):
    server, url = served(_policy(fail=True))
    with RemotePolicy(url) as remote:
        for _ in range(2):
            with pytest.raises(RuntimeError, match="policy failed: RuntimeError: CUDA out of memory"):
                remote.predict_action_chunk(_obs())
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as reply:
        assert reply.status == 200


def test_a_slow_reply_times_out_and_is_never_taken_for_the_next_one(served):
    server, url = served(_policy(delay_s=0.6))
    with RemotePolicy(url, timeout_s=0.2) as remote:
        with pytest.raises(TimeoutError, match="sent no reply within 0.2 s"):
            remote.predict_action_chunk(_obs(state2=1.0))
        remote.timeout_s = 5.0
        chunk = remote.predict_action_chunk(_obs(state2=-1.0))  # reconnects; the late reply died with the old link
        assert chunk[15, 0] == pytest.approx(-0.25)


def test_unreachable_server_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ConnectionError, match=f"cannot reach the policy server at ws://127.0.0.1:{port}"):
        RemotePolicy(f"ws://127.0.0.1:{port}", connect_timeout_s=2)
    with pytest.raises(ValueError, match="starts with ws:// or wss://"):
        RemotePolicy(f"http://127.0.0.1:{port}")


def test_serving_the_network_needs_a_token():
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "XVR_POLICY_TOKEN"}

    def serve(*args):
        return subprocess.run([sys.executable, "scripts/serve_policy.py", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)

    refused = serve("--host", "0.0.0.0", "--checkpoint", "nowhere")
    assert refused.returncode == 2 and "set XVR_POLICY_TOKEN" in refused.stderr
    missing = serve("--checkpoint", "/nonexistent/checkpoint")
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and len(missing.stderr.splitlines()) == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | st.binary(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12).map(lambda v: msgpack.packb(v, use_bin_type=True)))
def test_no_frame_gets_past_parsing_without_a_clean_error(frame):
    server = PolicyServer(_policy(), port=0)
    try:
        server._parse(frame)
    except (WireError, ValueError) as err:
        assert "\n" not in str(err)
    else:  # arbitrary data that happens to be a valid observation is astronomically unlikely
        pytest.fail(f"accepted {frame!r}")


def test_rollout_takes_a_policy_server(tmp_path, capsys):
    """A tiny trained checkpoint served on loopback, evaluated through `rollout.py --policy ws://...`."""
    dataset = write_synthetic_dataset(tmp_path / "demos", num_episodes=1, length=12, image_size=64,
                                      tasks=("TurnOffMicrowave",))
    train_cfg, model_cfg = parse_args(["--preset", "tiny", "--dataset", str(dataset), "--output", str(tmp_path / "runs"),
                                       "--batch-size", "2", "--steps", "1", "--save-every", "1", "--wandb", "false"])
    checkpoint = Workspace(plan_run(train_cfg, model_cfg)).run().run_dir / "checkpoint-000001"
    server = PolicyServer(VLAPolicy.from_checkpoint(checkpoint, device="cpu"), port=0)
    with ServerThread(server):
        url = f"ws://127.0.0.1:{server.port}"
        out = tmp_path / "eval"
        argv = ["--task", "TurnOffMicrowave", "--policy", url, "--episodes", "2", "--num-envs", "2",
                "--horizon", "6", "--execute-steps", "4", "--out-dir", str(out), "--progress", "false",
                "--allow-demo-seeds", "true"]
        assert main(argv) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [0, 1] and all(r["steps"] <= 6 and not r["error"] for r in rows)
    assert server.model_calls == 2  # two workers in lock-step: steps 0 and 4, each one batched call of 2
    settings = json.loads((out / "rollout_config.json").read_text())
    assert settings["policy"] == url and settings["policy_id"] == f"{url} {checkpoint.resolve()}"
    assert settings["image_size"] == 64  # the served checkpoint's training size, from the server's metadata
    assert main(["--task", "TurnOffMicrowave", "--policy", url, "--progress", "false"]) == 2
    assert "cannot reach the policy server at " + url in capsys.readouterr().err
