"""Source globs: fnmatch's rules plus `**/`, the same answers as before, with work linear in pattern and path."""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Callable

import pytest

from concurrent_mlflow import globs
from concurrent_mlflow.globs import _Automaton, _steps, compile_glob


def reference(pattern: str) -> Callable[[str], bool]:
    """How source patterns were matched before: every way of keeping or dropping each `**/` (2^n regexes)."""

    def variants(text: str) -> set[str]:
        head, sep, tail = text.partition("**/")
        rests = variants(tail) if sep else {""}
        return {head + sep + rest for rest in rests} | {head + rest for rest in rests} if sep else {text}

    regexes = [re.compile(fnmatch.translate(v)) for v in variants(pattern)]
    return lambda text: any(regex.match(text) for regex in regexes)


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("*.csv", ["a.csv", "sub/b.csv", ".csv"], ["a.csv.gz", "a.CSV"]),
        ("**/*.png", ["p.png", "sub/q.png", "a/b/c.png"], ["p.jpg", "png"]),
        ("sub/**/*.csv", ["sub/b.csv", "sub/deeper/c.csv", "sub/x/y/z.csv"], ["b.csv", "other/b.csv"]),
        ("a/**/b/**/c", ["a/b/c", "a/x/b/c", "a/b/y/c", "a/x/y/b/z/c", "a/b/b/c"], ["a/c", "a/b", "b/c"]),
        ("**/**/x", ["x", "a/x", "a/b/x"], ["ax", "a/y"]),
        ("***/x", ["x", "ax", "a/x", "ab/c/x"], ["y", "x/"]),
        ("?.csv", ["a.csv"], ["ab.csv", ".csv"]),
        ("**/[!a]?.txt", ["b1.txt", "d/c2.txt"], ["a1.txt", "d/a1.txt"]),
        ("**/[a-c]*", ["a", "x/b1", "x/c/"], ["d", "x/d"]),
        ("**/[*", ["[*", "d/[abc"], ["a"]),
        ("**/", ["", "a/", "a/b/"], ["a"]),
    ],
)
def test_patterns_match_as_before(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    glob, before = compile_glob(pattern), reference(pattern)
    for text in matching:
        assert glob(text) and before(text), text
    for text in not_matching:
        assert not glob(text) and not before(text), text


def test_random_patterns_agree_with_the_previous_matcher() -> None:
    rng = random.Random(20240611)
    pattern_parts = ["a", "b", "/", ".", "*", "?", "[", "]", "!", "-", "**/", "**/"]
    text_parts = ["a", "b", "/", ".", "-", "!", "[", "]"]
    checked = 0
    for _ in range(3000):
        pattern = "".join(rng.choice(pattern_parts) for _ in range(rng.randint(0, 9)))
        if _a_class_spans_a_dirs_wildcard(pattern):
            continue  # before, `[a**/]` was cut in two at `**/`; now a class reads its text literally
        glob, before = compile_glob(pattern), reference(pattern)
        for _ in range(15):
            text = "".join(rng.choice(text_parts) for _ in range(rng.randint(0, 10)))
            assert glob(text) == before(text), (pattern, text)
            checked += 1
    assert checked > 20_000


def _a_class_spans_a_dirs_wildcard(pattern: str) -> bool:
    return any("[" in pattern[:at] and "]" in pattern[at:] for at in _dirs_positions(pattern))


def _dirs_positions(pattern: str) -> list[int]:
    return [m.start() for m in re.finditer(r"(?=\*\*/)", pattern)]


def test_many_dirs_wildcards_cost_work_linear_in_the_path() -> None:
    """18 `**/` froze the engine for 6 minutes (2^18 regexes); 30 against a deep path that does not match."""
    pattern = "**/" * 30 + "x.csv"
    path = "/".join(["d"] * 500) + "/y.csv"
    automaton = _Automaton(_steps(pattern))
    assert not automaton.matches(path)
    assert automaton.matches("/".join(["d"] * 500) + "/x.csv")
    assert automaton.cached <= len(path) + 10  # each character learned once; no state set explodes
    assert len(automaton.states) <= 20
    interleaved = "".join(f"**/a{i}/" for i in range(30)) + "*.csv"
    almost = "/".join(f"a{i}" for i in range(29)) + "/q/z.csv"
    assert not compile_glob(interleaved)(almost)
    assert compile_glob(interleaved)("/".join(f"a{i}" for i in range(30)) + "/z.csv")


def test_the_learned_transitions_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pattern whose DFA has 2^10 states learns at most the cap, starting over, with the same answers."""
    monkeypatch.setattr(globs, "_MAX_CACHED", 100)
    pattern = "**/*a?????????"
    automaton, before = _Automaton(_steps(pattern)), reference(pattern)
    rng = random.Random(7)
    for _ in range(500):
        text = "".join(rng.choice("ab/") for _ in range(60))
        assert automaton.matches(text) == before(text)
        assert automaton.cached <= 100
