"""Continuous batching over llama.cpp: many sequences share each decode step; prefixes are reused."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from bendi.engines.llamacpp import mailbox
from bendi.engines.llamacpp.draft import DraftModel
from bendi.engines.llamacpp.model import LlamaModel
from bendi.engines.llamacpp.prefill import PrefillPace, plan_prefill
from bendi.engines.llamacpp.prompt_cache import PromptCache, SavedPrefix, common_prefix_length
from bendi.engines.llamacpp.sequence import Outbox, Sequence, build_sampler
from bendi.engines.llamacpp.speculate import MATCH_REACH, AnswerCache, NgramIndex, verify
from bendi.engines.llamacpp.speculate_policy import SpecState, SpeculationPolicy
from bendi.engines.stats import EngineStats


def min_copy_tokens(model: LlamaModel) -> int:
    """Fewest extra reused tokens for which copying another slot's prefix beats recomputing it.
    One KV pool: a copy only tags cells. One stream per sequence: llama.cpp copies the whole
    stream: measured on 2 cores, SmolLM2's 47 MB stream copies in ~3 ms and a prompt token takes
    ~2 ms, so a byte copied costs about 10 FLOPs of prompt processing (2 FLOPs per parameter)."""
    if model.config.unified_kv:
        return 1
    stream_bytes = model.kv_cache_bytes / max(1, model.config.sequences)
    return max(4, math.ceil(10 * stream_bytes / (2 * max(1, model.parameters))))


# llama.cpp puts only consecutive streams into one pass over the weights: a busy slot apart from
# the others costs each step another pass (4 streams: 29 instead of 20 ms a step), for the whole
# answer. Overwriting this many cached tokens of another conversation costs about as much.
GAP_COST_TOKENS = 512
# A slot about to be overwritten is saved to the RAM prompt cache only when it holds this many
# tokens the new request will not reuse: shorter ones are cheaper to recompute than to keep.
SAVE_MIN_TOKENS = 64


@dataclass
class Slot:
    """A llama.cpp sequence id. `tokens` are exactly the tokens in its KV cells, positions 0..n-1;
    an idle slot keeps them so a later request with the same prefix skips recomputing it."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    owner: Sequence | None = None
    last_used_s: float = 0.0


def consecutive_runs(slot_ids: set[int]) -> int:
    """How many runs of consecutive ids (passes over the weights per step) these slots make."""
    return sum(1 for i in slot_ids if i - 1 not in slot_ids)


def _proposal_room(seq: Sequence) -> int:
    """How many tokens a sequence may propose: never past max_tokens (hence the context), since the
    last token it emits is never decoded."""
    return seq.max_new_tokens - seq.generated - 1


def _deliver(items: list[tuple[asyncio.Queue[object], object]]) -> None:
    for queue, event in items:
        queue.put_nowait(event)


class Scheduler:
    """Owns the model's context on one thread. Requests join between steps; each step decodes one
    token for every generating sequence plus a bounded chunk of pending prompt tokens, so a long
    prompt never stalls the streams already running."""

    def __init__(
        self,
        model: LlamaModel,
        *,
        sequences: int,
        batch_tokens: int,
        prefill_chunk_tokens: int = 128,
        prefill_step_s: float = 0.0,
        prompt_cache_mb: int = 0,
        speculation: SpeculationPolicy | None = None,
        draft: DraftModel | None = None,
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._model = model
        self._batch_tokens = batch_tokens
        self._prefill_pace = PrefillPace(
            prefill_step_s, floor=max(1, min(prefill_chunk_tokens, batch_tokens))
        )
        self._slots = [Slot(i) for i in range(sequences)]
        self._incoming: deque[Sequence] = deque()
        self._waiting: deque[Sequence] = deque()
        self._active: list[Sequence] = []
        # Events of one step go to the event loop in one wake-up, not one per token, sent just
        # before the next decode so the loop's work overlaps it instead of delaying it.
        self._outbox: Outbox = []
        self._cv = threading.Condition()
        self._stopping = False
        self._batch = llama_cpp.llama_batch_init(batch_tokens, 0, 1)
        self._eog = frozenset(model.end_of_generation_tokens)
        self._min_copy_tokens = min_copy_tokens(model)
        self._prompt_cache = (
            PromptCache(llama_cpp, model.ctx, prompt_cache_mb << 20) if prompt_cache_mb > 0 else None
        )
        self._prompt_total = self._prompt_cached = self._generated = self._steps = 0
        self._streams_decoded_s = 0.0  # when the last step that decoded generating sequences ended
        self._policy = speculation or SpeculationPolicy()
        self._draft = draft  # proposes tokens when the policy's mode is "draft"
        self._answers = AnswerCache()  # clients' recent answers: auto mode's second source of proposals
        # Rejected proposals are removed from the KV cache by position; recurrent state cannot be.
        self._can_speculate = not self._is_recurrent(llama_cpp, model)
        self._thread = threading.Thread(
            target=self._run, name=f"bendi-scheduler-{model.path.name}", daemon=True
        )
        self._thread.start()

    # called from the event loop -------------------------------------------------------------
    def submit(self, seq: Sequence) -> None:
        with self._cv:
            if self._stopping:
                raise RuntimeError("scheduler is shut down")
            seq.outbox = self._outbox
            self._incoming.append(seq)
            self._cv.notify()

    def cancel(self, seq: Sequence) -> None:
        seq.cancelled = True  # read by the scheduler thread before its next step
        with self._cv:
            self._cv.notify()

    @staticmethod
    def _is_recurrent(lib: object, model: LlamaModel) -> bool:
        checks = [getattr(lib, name, None) for name in ("llama_model_is_recurrent", "llama_model_is_hybrid")]
        return any(bool(check(model.model)) for check in checks if check is not None)

    def set_speculation(self, policy: SpeculationPolicy) -> None:
        policy.carry_over(self._policy)
        self._policy = policy  # read by the scheduler thread at its next step

    @property
    def speculation(self) -> SpeculationPolicy:
        return self._policy

    def stats(self) -> EngineStats:
        return EngineStats(
            active_sequences=len(self._active),
            waiting_sequences=len(self._waiting) + len(self._incoming),
            prompt_tokens_total=self._prompt_total,
            prompt_tokens_cached=self._prompt_cached,
            generated_tokens_total=self._generated,
            decode_steps=self._steps,
            slots=len(self._slots),
            prompt_cache_entries=len(self._prompt_cache) if self._prompt_cache else 0,
            prompt_cache_bytes=self._prompt_cache.used_bytes if self._prompt_cache else 0,
            prompt_cache_restores=self._prompt_cache.restored if self._prompt_cache else 0,
            speculative_proposed_tokens=self._policy.proposed,
            speculative_accepted_tokens=self._policy.accepted,
        )

    def shutdown(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout=30)
        self._lib.llama_batch_free(self._batch)

    # the scheduler thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and not self._incoming and not self._active and not self._waiting:
                    self._cv.wait()
                if self._stopping:
                    break
                self._waiting.extend(self._incoming)
                self._incoming.clear()
            try:
                self._reap_cancelled()
                self._admit()
                if self._active:
                    self._step()
            except Exception as exc:  # a llama.cpp failure must end requests, not hang them
                for seq in self._active + list(self._waiting):
                    seq.emit(exc)
                    seq.done = True
                    self._free_sampler(seq)
                self._active.clear()
                self._waiting.clear()
                for slot in self._slots:
                    slot.owner, slot.tokens = None, []
                self._lib.llama_memory_clear(self._model.memory, True)
                if self._draft is not None:
                    self._draft.reset()
            if not self._active:  # otherwise the next step sends them just before its decode
                self._flush()
        for seq in self._active + list(self._waiting) + list(self._incoming):
            seq.finish("cancelled", "server shutting down")
            self._free_sampler(seq)
        self._flush()

    def _flush(self) -> None:
        if not self._outbox:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[object], object]]] = {}
        for loop, queue, event in self._outbox:
            by_loop.setdefault(loop, []).append((queue, event))
        self._outbox.clear()
        for loop, items in by_loop.items():
            mailbox.post(loop, _deliver, items)

    def _reap_cancelled(self) -> None:
        for seq in [s for s in self._waiting if s.cancelled]:
            self._waiting.remove(seq)
            seq.finish("cancelled")
        for seq in [s for s in self._active if s.cancelled]:
            slot = self._slots[seq.slot]
            # Free its KV cells at once: a cancelled request's cache is not worth keeping.
            self._lib.llama_memory_seq_rm(self._model.memory, slot.seq_id, -1, -1)
            slot.tokens = []
            seq.finish("cancelled")
            self._release(seq)

    def _admit(self) -> None:
        while self._waiting:
            free = [slot for slot in self._slots if slot.owner is None]
            if not free:
                return
            seq = self._waiting.popleft()
            try:
                self._assign(seq, free)
            except Exception:
                # Back in the queue, so the failure handler in _run ends it with the error too:
                # a sequence in neither list would leave its request waiting forever.
                if seq not in self._active:
                    self._waiting.appendleft(seq)
                raise

    def _assign(self, seq: Sequence, free: list[Slot]) -> None:
        prompt = seq.prompt_tokens
        limit = len(prompt) - 1  # at least one prompt token must be decoded to get logits
        matches = {slot.seq_id: common_prefix_length(slot.tokens, prompt) for slot in self._slots}
        # Overwrite the free slot whose cache loses least: one this prompt extends (the previous
        # turn of this conversation), else an empty one, else the one with the fewest tokens to
        # lose, oldest first; and keep the busy slots in one consecutive run. A longer prefix held
        # elsewhere is copied in below, so the caches of other conversations survive.
        busy = {slot.seq_id for slot in self._slots if slot.owner is not None}
        runs_now = consecutive_runs(busy)
        best_free = min(
            free,
            key=lambda s: (
                len(s.tokens)
                - matches[s.seq_id]
                + GAP_COST_TOKENS * (consecutive_runs(busy | {s.seq_id}) - runs_now),
                -matches[s.seq_id],
                s.last_used_s,
            ),
        )
        own = min(matches[best_free.seq_id], limit)
        donor, donated = None, own
        # Another slot (idle or busy) may hold a longer prefix: the same system prompt or documents.
        for slot in self._slots:
            shared = min(matches[slot.seq_id], limit)
            if slot is not best_free and shared > donated:
                donor, donated = slot, shared
        reused = self._fill_prefix(best_free, prompt, own, donor, donated, limit)
        best_free.owner = seq
        seq.slot = best_free.seq_id
        seq.n_past = seq.cached_tokens = reused
        banned = self._model.end_of_generation_tokens if seq.params.ignore_eos else ()
        seq.sampler = build_sampler(self._lib, seq.params, self._model.n_vocab, banned)
        self._prompt_total += len(prompt)
        self._prompt_cached += reused
        self._active.append(seq)

    def _fill_prefix(
        self, slot: Slot, prompt: list[int], own: int, donor: Slot | None, donated: int, limit: int
    ) -> int:
        """Give `slot` the longest reusable prefix of `prompt`: its own cells, a copy of another
        slot's, or a prefix saved in RAM; returns how many prompt tokens need no computing."""
        mem, lib, cache = self._model.memory, self._lib, self._prompt_cache
        if cache is not None and len(slot.tokens) - own >= SAVE_MIN_TOKENS:
            cache.save(slot.seq_id, slot.tokens)  # about to be overwritten: the owner may come back
        saved, from_ram = cache.longest_match(prompt) if cache is not None else (None, 0)
        from_ram = min(from_ram, limit)
        if (
            cache is not None
            and saved is not None
            and from_ram >= max(own, donated) + self._min_copy_tokens
            and self._restore(cache, saved, slot, from_ram)
        ):
            return from_ram
        if (
            donor is not None
            and donated >= own + self._min_copy_tokens
            and self._copy_prefix(donor, slot, donated)
        ):
            slot.tokens = prompt[:donated]
            return donated
        own = min(own, len(slot.tokens))  # a failed restore or copy above emptied the slot
        if lib.llama_memory_seq_rm(mem, slot.seq_id, own, -1):
            del slot.tokens[own:]
            return own
        lib.llama_memory_seq_rm(mem, slot.seq_id, -1, -1)  # cannot drop a tail (recurrent state)
        slot.tokens = []
        return 0

    def _restore(self, cache: PromptCache, saved: SavedPrefix, slot: Slot, length: int) -> bool:
        mem, lib = self._model.memory, self._lib
        lib.llama_memory_seq_rm(mem, slot.seq_id, -1, -1)
        slot.tokens = []
        if cache.restore(saved, slot.seq_id) and lib.llama_memory_seq_rm(mem, slot.seq_id, length, -1):
            slot.tokens = list(saved.tokens[:length])
            return True
        lib.llama_memory_seq_rm(mem, slot.seq_id, -1, -1)
        return False

    def _copy_prefix(self, donor: Slot, target: Slot, length: int) -> bool:
        """Give `target` the donor's first `length` tokens of KV; False if this memory cannot."""
        mem, lib = self._model.memory, self._lib
        lib.llama_memory_seq_rm(mem, target.seq_id, -1, -1)
        target.tokens = []
        if self._model.config.unified_kv:  # one shared pool: the cells are just tagged
            lib.llama_memory_seq_cp(mem, donor.seq_id, target.seq_id, 0, length)
        else:  # one stream per sequence: llama.cpp copies whole streams (queued to the next decode)
            lib.llama_memory_seq_cp(mem, donor.seq_id, target.seq_id, -1, -1)
        if lib.llama_memory_seq_rm(mem, target.seq_id, length, -1):
            return True
        lib.llama_memory_seq_rm(mem, target.seq_id, -1, -1)  # recurrent state: all or nothing
        return False

    def _release(self, seq: Sequence) -> None:
        if seq.spec is not None and seq.spec.index is not None and not seq.cancelled:
            self._answers.add(seq.client_id, seq.spec.index.tokens[len(seq.prompt_tokens) :])
        slot = self._slots[seq.slot]
        slot.owner = None
        slot.last_used_s = time.monotonic()
        self._free_sampler(seq)
        if seq in self._active:
            self._active.remove(seq)

    def _free_sampler(self, seq: Sequence) -> None:
        if seq.sampler is not None:
            self._lib.llama_sampler_free(seq.sampler)
            seq.sampler = None

    def _step(self) -> None:
        started_s = time.perf_counter()
        batch = self._batch
        token_arr, pos_arr, nseq_arr, seq_arr, logits_arr = (
            batch.token,
            batch.pos,
            batch.n_seq_id,
            batch.seq_id,
            batch.logits,
        )
        generating = [seq for seq in self._active if seq.next_token is not None]
        chunks = self._held_prefill(generating)
        if chunks:  # a prompt is read while the running streams wait for their next ride
            generating = []
        proposed = self._propose(generating) if generating else 0
        width = 1 + max((len(seq.proposals) for seq in generating), default=0)
        if not chunks:
            chunks = plan_prefill(
                self._active, len(generating) + proposed, self._batch_tokens, self._prefill_pace.chunk()
            )
        chunk_sizes = {id(seq): count for seq, count in chunks}
        n = 0
        outputs: list[tuple[Sequence, int]] = []
        # In stream (slot) order, prompt chunks included: llama.cpp puts the streams of several
        # sequences into one micro-batch only in increasing, consecutive order, so any other
        # order splits a step into several passes over the weights (8 streams: 47 vs 33 ms).
        for seq in sorted(generating + [seq for seq, _ in chunks], key=lambda s: s.slot):
            if seq.next_token is not None:
                token_arr[n], pos_arr[n], nseq_arr[n], logits_arr[n] = seq.next_token, seq.n_past, 1, 1
                seq_arr[n][0] = seq.slot
                outputs.append((seq, n))
                n += 1
                # Proposals follow their sequence's token, each with logits, to be verified.
                for offset, token in enumerate(seq.proposals, seq.n_past + 1):
                    token_arr[n], pos_arr[n], nseq_arr[n], logits_arr[n] = token, offset, 1, 1
                    seq_arr[n][0] = seq.slot
                    n += 1
                continue
            start = seq.n_past
            chunk = seq.prompt_tokens[start : start + chunk_sizes[id(seq)]]
            for offset, token in enumerate(chunk):
                token_arr[n], pos_arr[n], nseq_arr[n], logits_arr[n] = token, start + offset, 1, 0
                seq_arr[n][0] = seq.slot
                n += 1
            if start + len(chunk) == len(seq.prompt_tokens):
                logits_arr[n - 1] = 1
                outputs.append((seq, n - 1))
        if n == 0:
            self._flush()
            return
        batch.n_tokens = n
        self._flush()  # the previous step's events: the event loop handles them during this decode
        rc = self._lib.llama_decode(self._model.ctx, batch)
        if rc == 1:  # no room in the KV cache: drop idle prefix caches and try once more
            for slot in self._slots:
                if slot.owner is None and slot.tokens:
                    self._lib.llama_memory_seq_rm(self._model.memory, slot.seq_id, -1, -1)
                    slot.tokens = []
            rc = self._lib.llama_decode(self._model.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc}")
        self._steps += 1
        generated_before = self._generated
        for seq in generating:
            if not seq.proposals:
                self._slots[seq.slot].tokens.append(seq.next_token)  # type: ignore[arg-type]
                seq.n_past += 1
        for seq, count in chunks:
            self._slots[seq.slot].tokens.extend(seq.prompt_tokens[seq.n_past : seq.n_past + count])
            seq.n_past += count
            if not seq.prefilling:
                seq.prefill_done_s = time.monotonic()
        for seq, index in outputs:
            if seq.proposals:
                self._verify(seq, index)
            else:
                self._sample(seq, index)
        if generating:
            self._streams_decoded_s = time.monotonic()
        elapsed_s = time.perf_counter() - started_s
        if chunks:
            self._prefill_pace.record(sum(count for _, count in chunks), elapsed_s)
        elif generating:
            self._policy.record_step(len(generating), width, self._generated - generated_before, elapsed_s)

    def _held_prefill(self, generating: list[Sequence]) -> list[tuple[Sequence, int]]:
        """The prompt chunks of a step that leaves the running streams out (they got a token less
        than the prefill pace's step ago, prefill.PrefillPace.holds_streams); none when they ride.
        Only prompts that take more than this step are worth it: a short one is read in the same
        step as the streams' tokens either way, and a step of its own would cost them one more."""
        pace = self._prefill_pace
        if not generating or not pace.holds_streams(time.monotonic() - self._streams_decoded_s):
            return []
        chunk = min(pace.chunk(), self._batch_tokens)
        if sum(len(seq.prompt_tokens) - seq.n_past for seq in self._active if seq.prefilling) <= chunk:
            return []
        return plan_prefill(self._active, 0, self._batch_tokens, chunk, streams_held=True)

    def _propose(self, generating: list[Sequence]) -> int:
        """Give each generating sequence its proposals for this step; returns how many in all."""
        policy = self._policy
        for seq in generating:
            seq.proposals = []
        # Proposals come from the draft model in draft mode, and in auto mode when there is one.
        drafting = self._draft is not None and policy.mode in ("draft", "auto")
        if not (policy.enabled and self._can_speculate) or (policy.mode == "draft" and not drafting):
            return 0
        # Auto mode steps aside while prompts are prefilled (the step is compute-bound already).
        if policy.mode == "auto" and len(generating) < len(self._active):
            return 0
        room = self._batch_tokens - len(generating)
        if policy.mode == "auto" and not drafting:
            return self._propose_by_gain(generating, room)
        # With a draft model, auto mode speculates while that measures faster than not.
        if policy.mode == "auto" and not policy.want_speculation(len(generating)):
            return 0
        total = 0
        wants: list[tuple[Sequence, int]] = []
        for seq in generating:
            if room <= total:
                break
            state = seq.spec
            if state is None:  # index this sequence's history once, then token by token
                state = seq.spec = SpecState(None if drafting else NgramIndex(self._history(seq)))
            limit = min(_proposal_room(seq), room - total)
            if drafting:
                length = policy.proposal_length(state, limit)
                if length:
                    wants.append((seq, length))
                total += length
            else:
                seq.proposals = policy.proposal(state, limit)
                total += len(seq.proposals)
        if wants and self._draft is not None:
            histories = [(seq.slot, self._history(seq), n) for seq, n in wants]
            for (seq, _), proposals in zip(wants, self._draft.propose(histories), strict=True):
                seq.proposals = proposals
            total = sum(len(seq.proposals) for seq in generating)
        return total

    def _propose_by_gain(self, generating: list[Sequence], room: int) -> int:
        """Prompt lookup in auto mode: each sequence's candidates, as many as pay (speculate_policy)."""
        policy = self._policy
        candidates = []
        for seq in generating:
            if seq.spec is None:
                seq.spec = SpecState(NgramIndex(self._history(seq)))
            index = seq.spec.index
            assert index is not None
            limit = min(_proposal_room(seq), policy.max_tokens)
            # The longer match wins, the sequence's own history on a tie: its history (an answer
            # quoting its prompt), or the client's earlier answers (an answer like one given before).
            answer_matched, from_answers = self._answers.continuation(seq.client_id, index.tokens, limit)
            # Its own match is followed back only when there is another to compare (the hot path).
            matched, proposals = index.continuation(
                index.tokens, limit, reach=MATCH_REACH if answer_matched else 0
            )
            seq.spec.from_answers = answer_matched > matched
            candidates.append((seq.spec, from_answers if seq.spec.from_answers else proposals))
        lengths = policy.choose_lengths(len(generating), candidates, room)
        for seq, (_, proposals), length in zip(generating, candidates, lengths, strict=True):
            seq.proposals = proposals[:length]
        return sum(lengths)

    def _history(self, seq: Sequence) -> list[int]:
        """A generating sequence's tokens so far: its slot's, then the one about to be decoded."""
        assert seq.next_token is not None
        return [*self._slots[seq.slot].tokens, seq.next_token]

    def _verify(self, seq: Sequence, index: int) -> None:
        """Sample at the sequence's token and each proposal in turn while they agree; keep the KV of
        exactly the tokens plain decoding would have decoded, and remove the rest."""
        lib, ctx, sampler = self._lib, self._model.ctx, seq.sampler
        proposals, seq.proposals = seq.proposals, []
        decoded = [seq.next_token, *proposals]
        base = seq.n_past
        emitted = 0
        alive = True

        def sample_at(i: int) -> int:
            return int(lib.llama_sampler_sample(sampler, ctx, index + i))

        def take(token: int) -> bool:
            nonlocal emitted, alive
            emitted += 1
            alive = self._take(seq, token)
            return alive

        accepted = verify(sample_at, proposals, take)
        slot = self._slots[seq.slot]
        if emitted < len(decoded):  # rejected proposals, or tokens after the stop
            lib.llama_memory_seq_rm(self._model.memory, slot.seq_id, base + emitted, -1)
        slot.tokens.extend(decoded[:emitted])  # type: ignore[arg-type]
        seq.n_past = base + emitted
        if seq.spec is not None:
            self._policy.record_sequence(seq.spec, len(proposals), accepted)
        if not alive:
            self._release(seq)

    def _sample(self, seq: Sequence, index: int) -> None:
        token = self._lib.llama_sampler_sample(seq.sampler, self._model.ctx, index)
        if not self._take(seq, token):
            self._release(seq)

    def _take(self, seq: Sequence, token: int) -> bool:
        """Emit one sampled token; False when it ends the sequence (the caller releases it)."""
        if seq.first_token_s is None:
            seq.first_token_s = time.monotonic()
        seq.next_token = None
        if token in self._eog:  # the end marker is not part of the completion
            seq.finish("stop")
            return False
        seq.generated += 1
        self._generated += 1
        if seq.spec is not None and seq.spec.index is not None:
            seq.spec.index.append(token)
        if seq.push_text(self._model.piece(token)):
            seq.finish("stop", emit_tail=False)
            return False
        if seq.generated >= seq.max_new_tokens:
            seq.finish("length")
            return False
        seq.next_token = token
        return True
