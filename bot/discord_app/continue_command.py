"""The /continue slash command: options, ranges and defaults, then hands over to the job manager."""

import discord
from discord import app_commands

from bot.services import Services
from models.types import GenerationParams


def continue_command(services: Services) -> app_commands.Command:
    """Build /continue with ranges taken from the owner's caps (Discord enforces them, we check again)."""
    settings = services.settings
    prompt_max = min(settings.max_prompt_chars, 6000)  # Discord's limit for a string option

    @app_commands.command(name="continue", description="Continue your text with the language model")
    @app_commands.describe(
        prompt="The text to continue",
        max_tokens=f"How much to write, in tokens (default {settings.default_max_new_tokens}, at most {settings.max_new_tokens})",
        temperature="Randomness: 0 always picks the likeliest word, 1 is lively, 2 is wild (default 0.8)",
        top_p="Only sample from the most likely words making up this much probability (default 0.95)",
        top_k="Only sample from this many most likely words; 0 turns it off (default 50)",
        repetition_penalty="Discourage repeating itself: 1 is off, 1.2 is a good start (default 1.0)",
        seed="Same prompt, settings and seed give the same text again (default: random)",
        variants=f"How many different continuations to write (default 1, at most {settings.max_variants})",
    )
    @app_commands.rename(max_tokens="max_tokens")
    async def continue_(
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, prompt_max],
        max_tokens: app_commands.Range[int, 1, settings.max_new_tokens] | None = None,
        temperature: app_commands.Range[float, 0.0, 2.0] | None = None,
        top_p: app_commands.Range[float, 0.01, 1.0] | None = None,
        top_k: app_commands.Range[int, 0, 1000] | None = None,
        repetition_penalty: app_commands.Range[float, 1.0, 2.0] | None = None,
        seed: app_commands.Range[int, 0, 2**53] | None = None,
        variants: app_commands.Range[int, 1, settings.max_variants] | None = None,
    ) -> None:
        defaults = GenerationParams()
        params = GenerationParams(
            max_new_tokens=max_tokens or settings.default_max_new_tokens,
            temperature=defaults.temperature if temperature is None else temperature,
            top_p=defaults.top_p if top_p is None else top_p,
            top_k=defaults.top_k if top_k is None else top_k,
            repetition_penalty=defaults.repetition_penalty if repetition_penalty is None else repetition_penalty,
            seed=seed,
            variants=variants or 1,
        )
        await services.jobs.start(interaction, prompt, params)

    return continue_
