"""The one exception tree: every error a user can hit is a sentence that says what to do next."""

from __future__ import annotations


class BendiError(Exception):
    """Base of all bendi errors. `http_status` and `code` let the gateway map it without guessing."""

    http_status: int = 500
    code: str = "internal_error"
    error_type: str = "server_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserInputError(BendiError):
    """The caller asked for something malformed or impossible."""

    http_status = 400
    code = "invalid_request"
    error_type = "invalid_request_error"


class InvalidNameError(UserInputError):
    """A model, repo, file or knowledge-base name that is unsafe or malformed."""

    code = "invalid_name"


class AuthenticationError(BendiError):
    """No credentials, or credentials that are wrong, expired or revoked (HTTP 401)."""

    http_status = 401
    code = "authentication_required"
    error_type = "authentication_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class ForbiddenError(BendiError):
    """The caller is known but may not do this (HTTP 403). Objects they may not even see are 404s."""

    http_status = 403
    code = "permission_denied"
    error_type = "permission_error"


class NotFoundError(BendiError):
    """A named thing (model, knowledge base, document) does not exist."""

    http_status = 404
    code = "not_found"
    error_type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class ContextOverflowError(UserInputError):
    """The prompt (plus requested output) does not fit the model's context window."""

    code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, context_tokens: int, max_tokens: int | None = None) -> None:
        self.prompt_tokens = prompt_tokens
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        extra = f" plus max_tokens {max_tokens}" if max_tokens else ""
        super().__init__(
            f"This model's context window is {context_tokens} tokens, but the prompt has "
            f"{prompt_tokens} tokens{extra}. Shorten the conversation or the documents, or load the "
            f"model with a larger context (e.g. BENDI_CONTEXT_TOKENS or --ctx)."
        )


class InvalidModelFileError(UserInputError):
    """A model file is malformed, truncated or of a refused format."""

    code = "invalid_model_file"


class ModelTooLargeError(BendiError):
    """The advisor says the model will not fit in this machine's memory."""

    http_status = 503
    code = "model_does_not_fit"
    error_type = "server_error"


class EngineError(BendiError):
    """The inference engine failed (load error, crash)."""

    http_status = 503
    code = "engine_unavailable"
    error_type = "server_error"


class OverloadedError(BendiError):
    """The server is full; the client should retry after `retry_after_s`."""

    http_status = 503
    code = "server_overloaded"
    error_type = "server_error"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaExceededError(OverloadedError):
    """One client is over its own quota (HTTP 429)."""

    http_status = 429
    code = "rate_limit_exceeded"
    error_type = "rate_limit_error"


class DownloadError(BendiError):
    """A model download failed; the partial file is kept for resuming unless said otherwise."""

    http_status = 502
    code = "download_failed"


class IntegrityError(DownloadError):
    """A downloaded file's hash does not match the published one."""

    code = "hash_mismatch"


class DiskFullError(BendiError):
    http_status = 507
    code = "insufficient_storage"


class DocumentError(UserInputError):
    """A document could not be parsed (broken file, needs OCR, converter missing)."""

    code = "document_error"


class ParseFailedError(DocumentError):
    """The isolated parser process of one document timed out, crashed or ran out of memory;
    `reason` is one short word (timeout, cpu_limit, memory_limit, crashed, bad_output)."""

    code = "parse_failed"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RequestTimeoutError(BendiError):
    """A request ran past its deadline (settings.request_timeout_s) and was stopped."""

    http_status = 504
    code = "request_timeout"

    def __init__(
        self, message: str = "The request ran past the server's time limit (BENDI_REQUEST_TIMEOUT_S)."
    ) -> None:
        super().__init__(message)


class AlreadyExistsError(UserInputError):
    """Something with that name exists already (HTTP 409)."""

    http_status = 409
    code = "already_exists"


class PayloadTooLargeError(UserInputError):
    """An upload or request body over the configured limit (HTTP 413)."""

    http_status = 413
    code = "payload_too_large"


class ModelfileError(UserInputError):
    """A Modelfile (preset definition) that cannot be read; the message names the line."""

    code = "invalid_modelfile"

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"Modelfile line {line}: {message}" if line else message)
        self.line = line


class AdapterError(InvalidModelFileError):
    """A LoRA adapter that cannot be applied: missing, not a GGUF LoRA, truncated, or made for another
    base (architecture, dimensions); the message names what differs."""

    code = "invalid_adapter"


class RunInProgressError(UserInputError):
    """An evaluation or tuning run started over HTTP is still running; one runs at a time (HTTP 409)."""

    http_status = 409
    code = "run_in_progress"


class EvalSuiteError(UserInputError):
    """An evaluation suite (JSONL) that cannot be used; the message names the line."""

    code = "invalid_eval_suite"

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"Suite line {line}: {message}" if line else message)
        self.line = line


class PresetBaseInUseError(UserInputError):
    """A model that presets are built on cannot be removed before them (HTTP 409)."""

    http_status = 409
    code = "model_in_use"
