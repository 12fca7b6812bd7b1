"""/metrics in Prometheus text format: requests, queue, sequences, tokens, latency, prefix cache."""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bendi.engines.messages import Finished
from bendi.engines.replicas import ReplicaStatus
from bendi.engines.stats import EngineStats
from bendi.gateway.dependencies import client_id, get_services
from bendi.services import Services

if TYPE_CHECKING:
    from bendi.gateway.admission import Admission

router = APIRouter(tags=["observability"])
log = logging.getLogger("bendi.access")

TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ITL_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def render(self, name: str, labels: str) -> list[str]:
        lines, cumulative = [], 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}')
        lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        lines.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        lines.append(f"{name}_count{{{labels}}} {self.n}")
        return lines


class Metrics:
    """Process-wide counters, owned by the app (app.state.metrics), never a module global."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.rejections: dict[tuple[str, int], int] = defaultdict(int)
        self.tokens: dict[str, int] = defaultdict(int)
        self.ttft: dict[str, Histogram] = {}
        self.itl: dict[str, Histogram] = {}
        self.started_s = time.time()

    def count_request(self, route: str, method: str, status: int) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1

    def count_rejection(self, model: str, status: int) -> None:
        with self._lock:
            self.rejections[(model, status)] += 1

    def observe_generation(self, model: str, finished: Finished) -> None:
        with self._lock:
            self.tokens[model] += finished.usage.completion_tokens
            if not finished.first_token_timed:  # a whole reply: its first token's time is unknown
                return
            self.ttft.setdefault(model, Histogram(TTFT_BUCKETS_S)).observe(finished.time_to_first_token_s)
            if finished.usage.completion_tokens > 1:
                itl = (finished.total_time_s - finished.time_to_first_token_s) / (
                    finished.usage.completion_tokens - 1
                )
                self.itl.setdefault(model, Histogram(ITL_BUCKETS_S)).observe(itl)

    def render(self, services: Services, admission: Admission | None = None) -> str:
        out: list[str] = []

        def header(name: str, kind: str, text: str) -> None:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")

        with self._lock:
            header("bendi_http_requests_total", "counter", "HTTP requests by route, method and status.")
            for (route, method, status), n in sorted(self.requests.items()):
                out.append(
                    f'bendi_http_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}'
                )
            header(
                "bendi_rejected_requests_total", "counter", "Requests refused by admission control (503/429)."
            )
            for (model, status), n in sorted(self.rejections.items()):
                out.append(f'bendi_rejected_requests_total{{model="{_esc(model)}",status="{status}"}} {n}')
            header("bendi_generated_tokens_total", "counter", "Tokens generated, by model.")
            for model, n in sorted(self.tokens.items()):
                out.append(f'bendi_generated_tokens_total{{model="{_esc(model)}"}} {n}')
            header("bendi_time_to_first_token_seconds", "histogram", "Time from admission to first token.")
            for model, hist in sorted(self.ttft.items()):
                out += hist.render("bendi_time_to_first_token_seconds", f'model="{_esc(model)}"')
            header(
                "bendi_inter_token_latency_seconds", "histogram", "Mean time between tokens of a generation."
            )
            for model, hist in sorted(self.itl.items()):
                out += hist.render("bendi_inter_token_latency_seconds", f'model="{_esc(model)}"')
        pool = services.engines
        stats = pool.stats()
        gauges: tuple[tuple[str, str, Callable[[EngineStats], float]], ...] = (
            ("bendi_active_sequences", "Sequences being generated now.", lambda s: s.active_sequences),
            ("bendi_queued_sequences", "Sequences waiting for a free slot.", lambda s: s.waiting_sequences),
            ("bendi_engine_generated_tokens_total", "Tokens decoded by the engine.", lambda s: s.generated_tokens_total),
            ("bendi_prompt_tokens_total", "Prompt tokens submitted to the engine.", lambda s: s.prompt_tokens_total),
            ("bendi_prompt_tokens_cached_total", "Prompt tokens reused from the prefix cache.", lambda s: s.prompt_tokens_cached),
            ("bendi_prefix_cache_hit_ratio", "Share of prompt tokens served from the prefix cache.",
             lambda s: round(s.prefix_cache_hit_ratio, 6)),
            ("bendi_prompt_cache_bytes", "RAM holding prefixes evicted from slots.", lambda s: s.prompt_cache_bytes),
            ("bendi_prompt_cache_restores_total", "Prefixes restored from RAM into a slot.",
             lambda s: s.prompt_cache_restores),
            ("bendi_speculative_proposed_tokens_total", "Speculative tokens proposed and verified.",
             lambda s: s.speculative_proposed_tokens),
            ("bendi_speculative_accepted_tokens_total", "Speculative tokens the model accepted.",
             lambda s: s.speculative_accepted_tokens),
        )  # fmt: skip
        for name, text, value in gauges:
            header(name, "gauge", text)
            for model, stat in sorted(stats.items()):
                out.append(f'{name}{{model="{_esc(model)}"}} {value(stat)}')
        if admission is not None:
            header(
                "bendi_admission_running", "gauge", "Admitted requests holding a slot, by model (gateway)."
            )
            for model, n in sorted(admission.active().items()):
                out.append(f'bendi_admission_running{{model="{_esc(model)}"}} {n}')
            header("bendi_admission_queue_depth", "gauge", "Requests waiting for a slot, by model (gateway).")
            for model, n in sorted(admission.queue_depth().items()):
                out.append(f'bendi_admission_queue_depth{{model="{_esc(model)}"}} {n}')
        header("bendi_model_loaded", "gauge", "Loaded models with their memory in bytes.")
        for loaded in pool.loaded():
            info = loaded.info
            out.append(
                f'bendi_model_loaded{{model="{_esc(info.model_name)}",engine="{info.engine}"}} {info.memory_bytes}'
            )
        replica_rows: tuple[tuple[str, str, str, Callable[[ReplicaStatus], float]], ...] = (
            ("bendi_replica_healthy", "gauge", "1 while the replica is in service, 0 while it is out.",
             lambda r: int(r.healthy)),
            ("bendi_replica_in_flight", "gauge", "Requests on the replica now.", lambda r: r.in_flight),
            ("bendi_replica_requests_total", "counter", "Requests sent to the replica.", lambda r: r.requests_total),
            ("bendi_replica_failures_total", "counter", "Requests the replica failed or refused.",
             lambda r: r.failures_total),
        )  # fmt: skip
        replicas = pool.replicas()
        for name, kind, text, replica_value in replica_rows:
            header(name, kind, text)
            for replica in replicas:
                labels = f'model="{_esc(replica.model)}",replica="{_esc(replica.url)}"'
                out.append(f"{name}{{{labels}}} {replica_value(replica)}")
        header("bendi_uptime_seconds", "gauge", "Seconds since the server started.")
        out.append(f"bendi_uptime_seconds {time.time() - self.started_s:.1f}")
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


class _RequestCounter:
    """Pure ASGI middleware (not BaseHTTPMiddleware, which copies every streamed chunk through an
    extra task and memory stream): counts requests by route template and status, logs timings."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                request = Request(scope)
                route = getattr(scope.get("route"), "path", "unmatched")
                # The route template, never the raw URL (it may carry a key in a query string) or the body.
                log.info("request", extra={"route": route, "method": scope["method"], "status": status["code"],
                                           "ms_to_headers": round((time.perf_counter() - started) * 1000, 1),
                                           "client": client_id(request)})  # fmt: skip
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            scope["app"].state.metrics.count_request(route, scope["method"], status["code"])


def install_request_counter(app: FastAPI) -> None:
    app.state.metrics = Metrics()
    app.add_middleware(_RequestCounter)


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    metrics: Annotated[Metrics, Depends(get_metrics)],
) -> Response:
    admission = getattr(request.app.state, "admission", None)
    return Response(
        metrics.render(services, admission), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
