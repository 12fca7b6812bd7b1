"""The n-gram index and the verification rule, in pure Python: proposals match a rescan of the
history, and sampling through speculation keeps the target distribution (a statistical test)."""

from __future__ import annotations

import random
from collections import Counter

from bendi.engines.llamacpp.speculate import AnswerCache, NgramIndex, verify
from bendi.engines.llamacpp.speculate_policy import SpecState, SpeculationPolicy


def rescan_proposal(tokens: list[int], limit: int, max_n: int = 4, min_n: int = 2) -> list[int]:
    """The obvious quadratic version: latest earlier occurrence of the longest suffix."""
    for n in range(max_n, min_n - 1, -1):
        if len(tokens) < n:
            continue
        suffix = tokens[-n:]
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start : start + n] == suffix:
                return tokens[start + n : start + n + limit]
    return []


def test_proposals_continue_the_latest_earlier_occurrence() -> None:
    prompt = [1, 2, 3, 4, 5, 6, 9, 9, 2, 3, 7, 8]
    index = NgramIndex(prompt)
    assert index.propose(3) == []  # the suffix "7 8" occurs nowhere earlier
    index.append(2)
    index.append(3)
    assert index.propose(3) == [7, 8, 2]  # "8 2 3"/"2 3": latest earlier "2 3" was followed by 7 8 2
    index.append(1)
    index.append(2)
    index.append(3)
    # suffix "1 2 3" occurred at the start: its continuation is 4 5 6
    assert index.propose(3) == [4, 5, 6]
    assert index.propose(0) == []


def test_a_clients_earlier_answers_continue_another_sequence_and_only_its_own() -> None:
    cache = AnswerCache(max_tokens=40, max_clients=2)
    cache.add("alice", [10, 11, 12, 13, 14, 15, 16])
    history = [1, 2, 11, 12, 13]  # ends with 3 tokens of alice's answer
    assert cache.continuation("alice", history, 2) == (3, [14, 15])
    assert cache.continuation("alice", [9, *history], 2) == (3, [14, 15])
    assert cache.continuation("alice", [10, 11, 12, 13], 2) == (4, [14, 15])
    assert cache.continuation("bob", history, 2) == (0, [])  # never another client's answers
    assert cache.continuation("alice", [1, 12, 13], 2) == (0, [])  # 2 tokens are too weak a cue here
    cache.add("bob", [20, 21, 22, 23])
    cache.add("carol", [30, 31, 32, 33])  # a third client: the least recently served goes
    assert cache.continuation("alice", history, 2) == (0, [])
    assert cache.continuation("bob", [20, 21, 22], 1) == (3, [23])
    for start in range(0, 200, 8):  # bounded: old answers make room for new ones
        cache.add("bob", list(range(100 + start, 108 + start)))
        assert len(cache._indexes["bob"].tokens) <= 40
    assert cache.continuation("bob", [292, 293, 294], 2) == (3, [295, 296])
    assert cache.continuation("bob", [20, 21, 22], 1) == (0, [])  # forgotten, and not proposed


def test_the_incremental_index_agrees_with_a_rescan() -> None:
    rng = random.Random(7)
    for _ in range(30):
        tokens = [rng.randrange(6) for _ in range(rng.randrange(1, 80))]
        index = NgramIndex(tokens[:5])
        for token in tokens[5:]:
            index.append(token)
            assert index.propose(5) == rescan_proposal(index.tokens, 5)


# A small "model": the next token's distribution depends on the last token (a Markov chain).
VOCAB = 4
TABLE = [[0.55, 0.25, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4], [0.4, 0.4, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]]
LENGTH = 4


def draw(rng: random.Random, last: int) -> int:
    return rng.choices(range(VOCAB), TABLE[last])[0]


def plain(rng: random.Random) -> tuple[int, ...]:
    out = [0]
    while len(out) <= LENGTH:
        out.append(draw(rng, out[-1]))
    return tuple(out[1:])


def speculative(rng: random.Random, index_prompt: list[int], accept_blindly: bool = False) -> tuple[int, ...]:
    out = [0]
    index = NgramIndex(index_prompt + out, max_n=2, min_n=1)
    while len(out) <= LENGTH:
        proposals = index.propose(LENGTH - len(out))
        history = list(out)

        def sample_at(i: int, history: list[int] = history, proposals: list[int] = proposals) -> int:
            context = history + proposals[:i]
            if accept_blindly and i < len(proposals):  # a wrong rule: takes the proposal as is
                return proposals[i]
            return draw(rng, context[-1])

        def take(token: int) -> bool:
            out.append(token)
            index.append(token)
            return len(out) <= LENGTH

        verify(sample_at, proposals, take)
    return tuple(out[1:])


def total_variation(a: Counter[tuple[int, ...]], b: Counter[tuple[int, ...]], n: int) -> float:
    return sum(abs(a[k] - b[k]) for k in set(a) | set(b)) / (2 * n)


def chi_square(a: Counter[tuple[int, ...]], b: Counter[tuple[int, ...]]) -> tuple[float, int]:
    """Two-sample chi-square statistic over cells seen in either sample, and its degrees of freedom."""
    cells = [k for k in set(a) | set(b) if a[k] + b[k] >= 10]
    stat = sum((a[k] - b[k]) ** 2 / (a[k] + b[k]) for k in cells)
    return stat, len(cells) - 1


def test_sampling_through_speculation_keeps_the_distribution() -> None:
    n = 20_000
    prompt = [0, 1, 2, 3, 0, 0, 1, 3, 2, 0, 1]  # repeated spans: proposals are frequent
    reference = Counter(plain(random.Random(1000 + i)) for i in range(n))
    with_spec = Counter(speculative(random.Random(50_000 + i), prompt) for i in range(n))
    stat, dof = chi_square(reference, with_spec)
    # 99.9% quantile of chi-square (Wilson-Hilferty): fails about once in a thousand runs at random,
    # never with these fixed seeds.
    z = 3.09
    limit = dof * (1 - 2 / (9 * dof) + z * (2 / (9 * dof)) ** 0.5) ** 3
    assert stat < limit, (stat, limit)
    assert total_variation(reference, with_spec, n) < 0.05
    # The test can fail: taking proposals without sampling changes the distribution.
    wrong = Counter(speculative(random.Random(90_000 + i), prompt, accept_blindly=True) for i in range(n))
    assert chi_square(reference, wrong)[0] > limit
    assert total_variation(reference, wrong, n) > 0.05


def test_verify_stops_where_the_sequence_ends() -> None:
    taken: list[int] = []
    accepted = verify(lambda i: [5, 6, 7, 8][i], [5, 6, 7], lambda t: taken.append(t) or len(taken) < 2)
    assert taken == [5, 6] and accepted == 2
    taken.clear()
    assert verify(lambda i: [5, 9, 7, 8][i], [5, 6, 7], lambda t: taken.append(t) or True) == 1
    assert taken == [5, 9]
    taken.clear()
    assert verify(lambda i: [5, 6, 7, 8][i], [5, 6, 7], lambda t: taken.append(t) or True) == 3
    assert taken == [5, 6, 7, 8]  # all accepted, plus the token after the last proposal


def test_the_policy_grows_shrinks_and_rests() -> None:
    policy = SpeculationPolicy(mode="lookup", max_tokens=8)
    state = SpecState(NgramIndex([1, 2, 3, 1, 2]))
    assert policy.proposal(state, 10) == [3, 1, 2][: state.length]
    policy.record_sequence(state, 3, 3)
    assert state.length == 6
    policy.record_sequence(state, 6, 1)
    assert state.length == 2
    for _ in range(5):
        policy.record_sequence(state, 2, 0)
    assert state.rest > 0 and policy.proposal(state, 10) == []
    assert (policy.proposed, policy.accepted) == (3 + 6 + 10, 4)


def test_auto_mode_keeps_the_faster_way_and_retries_the_other() -> None:
    from bendi.engines.llamacpp.speculate_policy import RETRY_STEPS, TRIAL_STEPS

    policy = SpeculationPolicy(mode="auto")

    def steps(count: int, speculated: bool, tokens: int, seconds: float) -> list[bool]:
        wanted = []
        for _ in range(count):
            wanted.append(policy.want_speculation(1))
            policy.record_step(1, 4 if speculated else 1, tokens, seconds)
        return wanted

    # Unmeasured: each way is tried for a few steps, speculation first.
    assert steps(TRIAL_STEPS, True, 1, 0.02) == [True] * TRIAL_STEPS  # 50 tok/s
    assert steps(TRIAL_STEPS, False, 1, 0.01) == [False] * TRIAL_STEPS  # 100 tok/s
    assert steps(RETRY_STEPS - TRIAL_STEPS, False, 1, 0.01) == [False] * (RETRY_STEPS - TRIAL_STEPS)
    # After a while the loser gets a trial of several steps, not one noisy step ...
    assert steps(TRIAL_STEPS, True, 4, 0.02) == [True] * TRIAL_STEPS  # 200 tok/s: a quoting answer began
    assert policy.want_speculation(1)  # ... and wins now
    # Judged on sums, not an average of step rates: one rejected proposal among accepted runs
    # (1 token in 30 ms next to 6 in 20 ms) does not hand the answer to plain decoding.
    policy.record_step(1, 6, 1, 0.03)
    assert policy.want_speculation(1)
    policy.record_step(8, 3, 24, 0.02)
    policy.record_step(8, 1, 8, 0.02)
    assert policy.want_speculation(8)  # another batch size, its own measurements
    successor = SpeculationPolicy(mode="auto")
    successor.carry_over(policy)  # a new setting keeps what the engine measured
    assert successor.want_speculation(1) and successor.proposed == policy.proposed
    assert SpeculationPolicy(mode="lookup").want_speculation(3)
    assert not SpeculationPolicy(mode="off").enabled


def test_auto_mode_waits_longer_for_a_way_that_keeps_losing() -> None:
    """Where speculation never pays (many streams on few cores), each lost retry doubles the wait
    for the next one, up to a limit; when the rates cross, retries come soon again."""
    from bendi.engines.llamacpp.speculate_policy import MAX_RETRY_STEPS, RETRY_STEPS

    policy = SpeculationPolicy(mode="auto")
    spec_rate = [4.0]  # tokens per speculating step of 10 ms; plain steps make 8

    def gaps(count: int) -> list[int]:
        """Plain steps between the trials of speculation, for the next `count` trials."""
        found, run = [], 0
        while len(found) < count:
            speculated = policy.want_speculation(8)
            policy.record_step(8, 2 if speculated else 1, spec_rate[0] if speculated else 8, 0.01)
            if speculated and run:
                found.append(run)
                run = 0
            elif not speculated:
                run += 1
        return found

    waits = gaps(8)
    assert waits[:5] == [RETRY_STEPS, 2 * RETRY_STEPS, 4 * RETRY_STEPS, 8 * RETRY_STEPS, 16 * RETRY_STEPS]
    assert waits[5:] == [MAX_RETRY_STEPS] * 3
    spec_rate[0] = 40.0  # speculation pays now: its next trial wins, and it stays
    gaps(1)
    chosen = []
    for _ in range(20):
        speculated = policy.want_speculation(8)
        chosen.append(speculated)
        policy.record_step(8, 2 if speculated else 1, spec_rate[0] if speculated else 8, 0.01)
    assert sum(chosen) >= 16, chosen


def test_step_costs_are_measured_interpolated_and_capped() -> None:
    from bendi.engines.llamacpp.step_costs import StepCosts

    costs = StepCosts()
    assert costs.estimate(1) == 1.0 and abs(costs.estimate(3) - 1.6) < 1e-9  # a shape, in one-token steps
    costs.record(1, 0.010)
    costs.record(9, 0.020)
    assert abs(costs.estimate(5) - 0.015) < 1e-9  # between two measured sizes
    assert abs(costs.estimate(17) - 0.020 * 5.8 / 3.4) < 1e-9  # beyond them, scaled by the shape
    costs.record(1, 1.0)  # a stall (a page fault, another process) counts as twice the estimate
    assert abs(costs.measured(1) - (0.010 * 0.7 + 0.020) / 1.7) < 1e-9


def _policy_with_costs(generating: int, seconds_by_tokens: dict[int, float]) -> SpeculationPolicy:
    policy = SpeculationPolicy(mode="auto")
    for tokens, seconds in seconds_by_tokens.items():
        policy.record_step(generating, tokens // generating, generating, seconds)
    return policy


def _sure_state(hits: int, tries: int) -> SpecState:
    state = SpecState(NgramIndex([1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2]))
    state.judge(hits, tries)
    return state


def test_auto_mode_proposes_as_far_as_expected_gain_pays() -> None:
    """Where extra tokens are nearly free (one stream on a CPU) a sequence whose proposals hold
    proposes its whole run; where each costs a full step (a crowded batch) nothing is proposed, and
    the first candidate is kept as a shadow, judged once the real token is known."""
    candidates = [3, 4, 5, 6, 7, 8, 9, 1]
    cheap = _policy_with_costs(1, {1: 0.010, 9: 0.012})
    assert cheap.choose_lengths(1, [(_sure_state(20, 20), candidates)], room=100) == [8]
    assert cheap.choose_lengths(1, [(_sure_state(20, 20), candidates)], room=4) == [4]  # the context's end

    dear = _policy_with_costs(1, {1: 0.010, 9: 0.090})
    state = _sure_state(20, 20)
    assert dear.choose_lengths(1, [(state, candidates)], room=100) == [0]
    assert state.shadow == (11, 3, False)  # (where, token, from the client's answers)
    tries = state.tries
    state.index.append(3)  # the model decoded what the shadow proposed
    state.settle_shadow()
    assert state.shadow is None and state.tries == tries * 0.9 + 1 and state.token_acceptance > 0.9


def test_auto_mode_takes_one_length_for_the_step_from_all_sequences() -> None:
    """A step costs what its longest proposal makes it, so one length is chosen for all: a sure
    sequence's run is cut where widening the step costs more than its chances gain (the unsure
    sequence rides along at no extra width), and unsure sequences alone propose nothing."""
    policy = _policy_with_costs(2, {2: 0.010, 4: 0.0105, 6: 0.011, 18: 0.030})
    sure, unsure = _sure_state(40, 40), _sure_state(0, 40)
    lengths = policy.choose_lengths(2, [(sure, [3, 4, 5, 6, 7, 8, 9, 1]), (unsure, [7, 7])], room=100)
    assert lengths[0] == lengths[1] == 2  # cheap up to a width of 3, dear beyond
    assert policy.choose_lengths(2, [(sure, [3]), (unsure, [7, 7, 7])], room=100) == [1, 1]
    assert policy.choose_lengths(2, [(_sure_state(0, 40), [7, 7, 7]), (unsure, [7])], room=100) == [0, 0]
