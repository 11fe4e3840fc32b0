"""Writing an engine result into the request log, the same way for the bot and the CLI."""

from __future__ import annotations

from models.types import GenerationResult


async def log_result(store: object, request_id: int, result: GenerationResult) -> None:
    """Mark the row done with everything the result says (outputs, seed, tokens, timings)."""
    await store.mark_done(
        request_id,
        outputs=list(result.texts),
        seed=result.seed,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=list(result.completion_tokens),
        queue_s=result.queue_s,
        generation_s=result.generation_s,
    )
