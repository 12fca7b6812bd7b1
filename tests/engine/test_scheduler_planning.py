"""How a step's prompt budget is shared, and how events reach the event loop from the scheduler thread."""

from __future__ import annotations

import asyncio
import threading

from bendi.core.settings import Settings
from bendi.engines.llamacpp import mailbox
from bendi.engines.llamacpp.prefill import PrefillPace, plan_prefill
from bendi.engines.llamacpp.sequence import Sequence
from bendi.engines.messages import SamplingParams


def prompt(tokens: int, done: int = 0) -> Sequence:
    loop = asyncio.new_event_loop()
    loop.close()
    seq = Sequence("r", list(range(tokens)), SamplingParams(), 8, loop, asyncio.Queue())
    seq.n_past = done
    return seq


def test_while_others_generate_a_step_takes_one_chunk_first_come_first_served() -> None:
    first, second = prompt(300), prompt(300)
    assert [n for _, n in plan_prefill([first, second], 7, 512, 64)] == [64]


def test_by_default_a_long_prompt_beside_running_streams_fills_whole_attention_tiles() -> None:
    """llama.cpp's CPU flash attention takes 64+ queries of one sequence as tiles and fewer row by
    row, ~2x slower deep in a long prompt; one of a step's prompt tokens may ride in the running
    streams' micro-batch. So the default chunk leaves more than 64 for the prompt's own."""
    default = Settings.model_fields["prefill_chunk_tokens"].default
    long = prompt(2600, done=1000)
    [(_, taken)] = plan_prefill([long], 7, Settings.model_fields["batch_tokens"].default, default)
    assert taken - 1 >= 64


def test_a_short_tail_joins_the_chunk_instead_of_costing_another_step() -> None:
    seq = prompt(90)  # 64 now would leave 26 for a step of their own
    assert plan_prefill([seq], 7, 512, 64) == [(seq, 90)]
    longer = prompt(140)  # 76 left over is more than half a chunk: chunked as usual
    assert plan_prefill([longer], 7, 512, 64) == [(longer, 64)]


def test_a_tail_never_overfills_the_batch() -> None:
    seq = prompt(100, done=0)
    assert plan_prefill([seq], 7, 80, 64) == [(seq, 64)]  # 100 > 73 tokens of room


def test_with_nothing_generating_prompts_fill_the_whole_batch() -> None:
    first, second, third = prompt(300), prompt(300, done=100), prompt(50)
    assert [n for _, n in plan_prefill([first, second, third], 0, 512, 64)] == [300, 200, 12]


def test_streams_held_out_of_a_step_still_keep_the_prompt_to_one_chunk() -> None:
    """A step that leaves the running streams out is still theirs to wait for: paced, not the
    whole batch (a big model reads 512 tokens in many seconds)."""
    long = prompt(2000)
    assert [n for _, n in plan_prefill([long], 0, 512, 128, streams_held=True)] == [128]


def test_streams_ride_a_prompt_step_once_the_pace_step_has_passed() -> None:
    pace = PrefillPace(1.0, floor=128)
    assert pace.holds_streams(0.2) and not pace.holds_streams(1.0)
    assert not PrefillPace(0.0, floor=128).holds_streams(0.0)  # unpaced: they ride every step


def test_generating_sequences_get_no_prompt_tokens() -> None:
    running = prompt(20, done=20)
    waiting = prompt(30)
    assert plan_prefill([running, waiting], 1, 512, 64) == [(waiting, 30)]


def test_mailbox_delivers_in_order_from_another_thread() -> None:
    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        mailbox.open_mailbox(loop)
        received: list[int] = []
        done = asyncio.Event()

        def receive(value: int) -> None:
            received.append(value)
            if value == 999:
                done.set()

        sender = threading.Thread(target=lambda: [mailbox.post(loop, receive, i) for i in range(1000)])
        sender.start()
        await asyncio.wait_for(done.wait(), timeout=10)
        sender.join()
        return received

    assert asyncio.run(scenario()) == list(range(1000))


def test_posting_to_a_closed_loop_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.sleep(0))
    mailbox.open_mailbox(loop)
    loop.close()
    mailbox.post(loop, lambda _: None, None)  # no exception: nobody is listening there any more


def test_the_prompt_chunk_beside_running_streams_follows_the_measured_pace() -> None:
    """A chunk is what the engine reads in about step_s seconds, in whole 64-token tiles, never
    below the floor: a fast engine reads a long prompt in few steps (each step beside running
    streams costs them a pass over the weights), a slow one keeps the floor's short steps."""
    pace = PrefillPace(step_s=1.0, floor=128)
    assert pace.chunk() == 128  # nothing measured yet
    pace.record(512, 0.8)  # 640 tokens a second
    assert pace.chunk() == 640
    assert plan_prefill([prompt(2600, done=1000)], 7, 512, pace.chunk())[0][1] == 512 - 7  # the batch's room
    for _ in range(10):
        pace.record(128, 2.0)  # a big model: 64 tokens a second
    assert pace.chunk() == 128
    fixed = PrefillPace(step_s=0.0, floor=128)
    fixed.record(512, 0.1)
    assert fixed.chunk() == 128
