"""Engine pass-through arguments from the config file, refused when they would expose or weaken the engine."""

from __future__ import annotations

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Flags bendi owns or never allows, with the sentence that says why (vLLM and SGLang spellings).
REFUSED: dict[str, str] = {
    "--port": "bendi picks the engine's private port itself",
    "--uds": "the engine must listen on bendi's private loopback port, not a socket file",
    "--api-key": (
        "bendi's gateway does the authentication (set bendi's api_key or users instead); a key on the "
        "engine would only make bendi's own requests to it fail"
    ),
    "--trust-remote-code": "bendi never runs Python code shipped inside a model directory",
    "--served-model-name": "bendi names the model itself (clients use bendi's model name)",
    "--model": "bendi passes the model directory itself",
    "--model-path": "bendi passes the model directory itself",
    "--ssl-keyfile": "TLS belongs to bendi's gateway (tls_cert / tls_key), not the private engine port",
    "--ssl-certfile": "TLS belongs to bendi's gateway (tls_cert / tls_key), not the private engine port",
}


def _flag_and_value(args: tuple[str, ...], index: int) -> tuple[str, str | None]:
    arg = args[index]
    if "=" in arg:
        flag, value = arg.split("=", 1)
        return flag, value
    following = args[index + 1] if index + 1 < len(args) else None
    return arg, following if following is not None and not following.startswith("--") else None


def check_engine_args(args: tuple[str, ...], where: str = "engine_args") -> tuple[str, ...]:
    """`args` unchanged when every one is safe to add to the engine's command line; else ValueError
    with a sentence naming the argument and why bendi refuses it."""
    for index, arg in enumerate(args):
        if not isinstance(arg, str) or not arg or "\0" in arg:
            raise ValueError(f"{where}: {arg!r} is not a command-line argument (use non-empty strings).")
        if not arg.startswith("-"):
            continue
        flag, value = _flag_and_value(args, index)
        flag = flag.replace("_", "-")
        if flag in REFUSED:
            raise ValueError(f"{where}: bendi refuses {arg!r}: {REFUSED[flag]}.")
        if flag == "--host" and (value or "").strip("[]") not in LOOPBACK_HOSTS:
            raise ValueError(
                f"{where}: bendi refuses '--host {value or ''}': the engine listens on loopback "
                "only, so that nothing but bendi can reach it (its own routes such as /pause and "
                "/collective_rpc have no authentication). Serve other machines through bendi's own "
                "--host; remove this argument."
            )
    return args
