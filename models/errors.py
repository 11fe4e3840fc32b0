"""Errors raised by the inference engine.

    EngineError
    ├── ModelLoadError        the model is missing, broken or cannot be placed on the device
    ├── InvalidRequest        a parameter or prompt breaks a rule (``field`` names it)
    ├── SubmitRejected        the engine will not take the request now
    │   ├── QueueFull         the bounded queue is full (``queue_size`` says how long it is)
    │   ├── TooManyPending    the user already has ``limit`` requests waiting or running
    │   └── EngineClosed      the engine is shutting down or has stopped
    └── WorkerDied            the worker task or thread failed; every waiter is told
"""


class EngineError(Exception):
    """Base of every error the engine raises."""


class ModelLoadError(EngineError):
    """The model could not be loaded; the message says what to do."""


class InvalidRequest(EngineError, ValueError):
    """A generation parameter or the prompt is not acceptable."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SubmitRejected(EngineError):
    """The engine refused to queue a request."""


class QueueFull(SubmitRejected):
    """The queue already holds ``queue_size`` requests."""

    def __init__(self, queue_size: int) -> None:
        super().__init__(f"the queue is full ({queue_size} requests waiting)")
        self.queue_size = queue_size


class TooManyPending(SubmitRejected):
    """The user already has ``limit`` requests queued or running."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"you already have {limit} requests waiting")
        self.limit = limit


class EngineClosed(SubmitRejected):
    """The engine is shutting down or closed."""

    def __init__(self) -> None:
        super().__init__("the engine is shutting down")


class WorkerDied(EngineError):
    """The worker failed; raised into (or reported to) every waiting request."""
