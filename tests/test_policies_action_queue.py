import math

import numpy as np
import pytest

from policies.action_queue import ActionQueue, ChunkExecution, ExecutionConfig


def _chunk(start, horizon=16, dim=2):
    """Chunk whose action t is (start + t) in every dimension, so executed actions reveal their origin."""
    return np.repeat(np.arange(start, start + horizon, dtype=np.float32)[:, None], dim, axis=1)


def test_chunk_mode_executes_n_of_16_then_asks_again():
    queue = ActionQueue(ExecutionConfig(mode="chunk", execute_steps=8), chunk_size=16)
    executed, chunks = [], 0
    for step in range(20):
        if queue.needs_chunk():
            queue.push(_chunk(100 * chunks))
            chunks += 1
        executed.append(queue.pop()[0])
    assert chunks == 3
    assert executed[:8] == list(range(8)) and executed[8:16] == list(range(100, 108)) and executed[16] == 200


def test_reset_drops_queued_actions():
    queue = ActionQueue(ExecutionConfig(execute_steps=4))
    queue.push(_chunk(0))
    queue.pop()
    queue.reset()
    assert queue.needs_chunk()
    with pytest.raises(RuntimeError, match="push a chunk first"):
        queue.pop()


def test_ensemble_weights_the_oldest_prediction_most():
    queue = ActionQueue(ExecutionConfig(mode="ensemble", execute_steps=1, ensemble_coeff=0.5))
    assert queue.needs_chunk()
    queue.push(np.zeros((16, 1), np.float32))
    assert queue.pop()[0] == 0.0
    assert queue.needs_chunk()
    queue.push(np.ones((16, 1), np.float32))
    # step 1 is covered by the first chunk (weight 1, value 0) and the second (weight e^-0.5, value 1)
    w = math.exp(-0.5)
    assert queue.pop()[0] == pytest.approx(w / (1 + w), rel=1e-6)


def test_ensemble_with_a_query_period_and_expired_chunks():
    queue = ActionQueue(ExecutionConfig(mode="ensemble", execute_steps=4, ensemble_coeff=0.01), chunk_size=16)
    pushes = 0
    for _ in range(40):
        if queue.needs_chunk():
            queue.push(_chunk(0))
            pushes += 1
        queue.pop()
    assert pushes == 10  # every 4 steps
    # at most 4 chunks (16 / 4) overlap any step, so old ones are dropped
    assert len(queue._chunks) <= 4


def test_identical_chunks_blend_to_themselves():
    queue = ActionQueue(ExecutionConfig(mode="ensemble", execute_steps=1))
    out = []
    for step in range(10):
        queue.push(_chunk(step))  # every chunk predicts action value == absolute step
        out.append(queue.pop()[0])
    assert out == pytest.approx(list(range(10)))


def test_bad_configs_and_chunks_are_one_line_errors():
    with pytest.raises(ValueError, match="execute_steps must be in 1..16"):
        ActionQueue(ExecutionConfig(execute_steps=17), chunk_size=16)
    with pytest.raises(ValueError, match="'chunk' or 'ensemble'"):
        ActionQueue(ExecutionConfig(mode="blend"))
    with pytest.raises(ValueError, match=r"\(horizon, action_dim\)"):
        ActionQueue().push(np.zeros(16))


def test_one_policy_runs_a_queue_per_slot_and_batches_the_slots_that_need_a_chunk():
    chunks = ChunkExecution(ExecutionConfig(execute_steps=4), chunk_size=16)
    calls = []

    def predict(obs, slots):
        calls.append(slots)
        return np.stack([_chunk(100 * slot) for slot in slots])

    obs = {"observation.state": np.zeros(16, np.float32), "task": "reach"}
    assert chunks.select([obs, obs], [0, 1], predict)[:, 0].tolist() == [0, 100]
    chunks.select([obs, obs], [0, 1], predict)
    chunks.select([obs, obs], [0, 1], predict)
    chunks.reset(slot=1)  # a new episode starts in slot 1 only
    assert chunks.select([obs, obs], [0, 1], predict)[:, 0].tolist() == [3, 100]
    assert calls == [[0, 1], [1]] and chunks.predictions == 2
    with pytest.raises(ValueError, match=r"non-finite \(NaN/inf\) actions"):
        chunks.select([obs], [2], lambda obs, slots: np.full((1, 16, 2), np.nan))
    with pytest.raises(ValueError, match=r"chunks of shape \(16, 2\) for a batch of 1"):
        chunks.select([obs], [3], lambda obs, slots: _chunk(0))
