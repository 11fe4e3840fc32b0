"""Filter benchmark: time to check a streamed output before each edit, with 1,000 rules.

    python benchmarks/filter.py [--rules 1000] [--regex-share 0.05] [--chars 1000,4000,16000] [--json]

A text grows by one token-sized delta at a time (about four characters, like the model's deltas)
and the whole text is checked after every delta, as the bot does before an edit can show it.
The baseline is the same stream with one rule (the normalisation and bookkeeping, hardly any matching).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import emit, format_table, percentile  # noqa: E402
from bot.safety.matcher import RuleSet  # noqa: E402
from bot.safety.rules import Rule, make_rule  # noqa: E402
from bot.safety.stream import OutputWatch  # noqa: E402

TARGET_P99_MS = 1.0
DELTA_CHARS = 4


def vocabulary(rng: random.Random, n: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def make_rules(rng: random.Random, vocab: list[str], count: int, regex_share: float) -> list[Rule]:
    """Words, two- and three-word phrases, and regexes (a literal word, then a repeat) over the vocabulary."""
    rules = []
    regexes = round(count * regex_share)
    for i in range(count):
        key = f"rule {i + 1}"
        if i < regexes:
            rules.append(make_rule(key, "regex", rf"\b{rng.choice(vocab)}\s+\w{{2,8}}\d+\b"))
        else:
            phrase = " ".join(rng.choice(vocab) for _ in range(rng.choice((1, 1, 1, 2, 3))))
            rules.append(make_rule(key, "word", phrase, action=rng.choice(("block", "flag"))))
    return rules


def stream_text(rng: random.Random, vocab: list[str], chars: int) -> str:
    """Text in the vocabulary's common words, with some accents and punctuation, ``chars`` long."""
    words: list[str] = []
    size = 0
    while size < chars:
        word = vocab[min(int(rng.paretovariate(1.1)) - 1, len(vocab) - 1)]
        if rng.random() < 0.05:
            word = word.capitalize() + rng.choice((",", ".", "é", "!"))
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]


def measure(rules: list[Rule], text: str) -> dict[str, Any]:
    """Check every prefix of ``text`` that ends a delta; the per-check times in milliseconds."""
    watch = OutputWatch(RuleSet(rules, "output"))
    times: list[float] = []
    blocked = 0
    for end in range(DELTA_CHARS, len(text) + DELTA_CHARS, DELTA_CHARS):
        started = time.perf_counter()
        verdict = watch.check([text[:end]], 0)
        times.append((time.perf_counter() - started) * 1000)
        watch.blocked = None  # keep checking the whole stream, as if nothing matched
        blocked += verdict.block is not None
    return {"checks": len(times), "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
            "max_ms": max(times), "blocked_checks": blocked}


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    vocab = vocabulary(rng)
    rules = make_rules(rng, vocab, args.rules, args.regex_share)
    results = []
    for chars in args.chars:
        text = stream_text(rng, vocab, chars)
        for method, used in (("baseline (1 rule)", rules[-1:]), (f"{len(rules)} rules", rules)):
            results.append({"output_chars": chars, "method": method, **measure(used, text)})
    default = next(r for r in results if r["method"] != results[0]["method"] and r["output_chars"] == args.chars[0])
    targets = [{"target": f"p99 check per edit < {TARGET_P99_MS:g} ms ({default['output_chars']} chars, "
                          f"{len(rules)} rules)", "measured": default["p99_ms"],
                "met": default["p99_ms"] < TARGET_P99_MS}]
    return {"benchmark": "filter", "rules": len(rules), "regex_rules": round(args.rules * args.regex_share),
            "delta_chars": DELTA_CHARS, "results": results, "targets": targets}


def render(report: dict[str, Any]) -> str:
    title = (f"filter check per edit: {report['rules']} rules ({report['regex_rules']} regex), "
             f"a check after every {report['delta_chars']}-character delta")
    lines = [title, "",
             format_table(report["results"], ["output_chars", "method", "checks", "p50_ms", "p99_ms", "max_ms"]),
             "", format_table(report["targets"], ["target", "measured", "met"])]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--regex-share", type=float, default=0.05, help="fraction of the rules that are regexes")
    parser.add_argument("--chars", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 4000, 16000],
                        help="output lengths; the first is the one the target is judged on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    emit(report, args.json, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
