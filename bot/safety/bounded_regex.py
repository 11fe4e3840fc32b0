"""Regular-expression rules that cannot run away: refused when risky, and every search has a time limit."""

from __future__ import annotations

import logging
import time

import regex

from bot.safety.errors import RuleRefused

log = logging.getLogger(__name__)

FLAGS = regex.IGNORECASE | regex.VERSION0
PROBE_LENGTH = 3000
PROBE_TIMEOUT_S = 0.05  # a rule slower than this on a worst-case probe is refused
SEARCH_TIMEOUT_S = 0.005  # per search at run time, so one rule can never stall the bot
MAX_REPEAT = 100

_QUANTIFIERS = "*+?{"


def compile_regex(pattern: str) -> regex.Pattern[str]:
    """The compiled pattern (no checks; use ``check_regex`` first)."""
    return regex.compile(pattern, FLAGS)


def check_regex(pattern: str) -> regex.Pattern[str]:
    """Compile ``pattern`` or raise RuleRefused: syntax, backreferences, nested or huge repeats, empty matches, slowness."""
    _check_syntax(pattern)
    try:
        compiled = compile_regex(pattern)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise RuleRefused(f"the regular expression is not valid: {exc}") from None
    if compiled.search("") is not None:
        raise RuleRefused("the regular expression matches empty text, so it would match everything")
    _probe(compiled)
    return compiled


def search(compiled: regex.Pattern[str], text: str, pos: int = 0) -> regex.Match[str] | None:
    """``compiled.search(text, pos)`` within SEARCH_TIMEOUT_S; a search that runs out is logged and counts as no match."""
    try:
        return compiled.search(text, pos, timeout=SEARCH_TIMEOUT_S)
    except TimeoutError:
        log.warning("a filter regex ran past %.0f ms on %d characters; skipped", SEARCH_TIMEOUT_S * 1000, len(text))
        return None


def _check_syntax(pattern: str) -> None:
    """Walk the pattern once: refuse backreferences, recursion, repeats above MAX_REPEAT and quantified groups that repeat inside."""
    groups: list[bool] = []  # per open group: does it contain a quantifier?
    closed_group_repeats = False  # the group that just closed contained one
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            _check_escape(pattern[i + 1:i + 3])
            i, closed_group_repeats = i + 2, False
            continue
        if char == "[":
            i, closed_group_repeats = _skip_class(pattern, i), False
            continue
        if char == "(":
            if pattern.startswith(("(?P=", "(?P>", "(?&", "(?R", "(?0", "(?1", "(?(", "(?|"), i):
                raise RuleRefused("backreferences, recursion and conditionals are not allowed in filter regexes")
            groups.append(False)
        elif char == ")":
            inner = groups.pop() if groups else False
            closed_group_repeats = inner
            if groups:
                groups[-1] = groups[-1] or inner
            i += 1
            continue
        elif char in _QUANTIFIERS and not (char == "?" and i > 0 and pattern[i - 1] == "("):
            _check_count(pattern, i)
            if closed_group_repeats and char != "?":
                raise RuleRefused("a repeated group that itself repeats (like (a+)+) can take too long; rewrite it")
            if groups:
                groups[-1] = True
        closed_group_repeats = False
        i += 1


def _check_escape(escape: str) -> None:
    if escape[:1].isdigit() and escape[:1] != "0" or escape[:1] in ("g", "k"):
        raise RuleRefused("backreferences are not allowed in filter regexes")


def _skip_class(pattern: str, start: int) -> int:
    i = start + 1
    if pattern[i:i + 1] == "^":
        i += 1
    if pattern[i:i + 1] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def _check_count(pattern: str, i: int) -> None:
    if pattern[i] != "{":
        return
    end = pattern.find("}", i)
    numbers = pattern[i + 1:end].replace(",", " ").split() if end > i else []
    if any(n.isdigit() and int(n) > MAX_REPEAT for n in numbers):
        raise RuleRefused(f"repeat counts above {MAX_REPEAT} are not allowed")


def _probe(compiled: regex.Pattern[str]) -> None:
    """Run the pattern on texts that make backtracking patterns explode; refuse it if one runs out of time."""
    letters = {c for c in compiled.pattern.lower() if c.isalnum()} | {"a", "0", " "}
    probes = [c * PROBE_LENGTH + "\x00" for c in sorted(letters)[:12]]
    probes.append(("".join(sorted(letters)) * PROBE_LENGTH)[:PROBE_LENGTH] + "\x00")
    started = time.perf_counter()
    for probe in probes:
        try:
            compiled.search(probe, timeout=PROBE_TIMEOUT_S)
        except TimeoutError:
            raise RuleRefused("the regular expression could take too long on some texts; simplify it") from None
    log.debug("regex probe took %.1f ms", (time.perf_counter() - started) * 1000)
