"""Glob patterns of source nodes (`pattern: "**/*.csv"`), matched in time linear in pattern and path.

The rules are fnmatch's (`*` and `?` cross `/`, `[...]` / `[!...]` classes), plus `**/`, which matches
nothing or any run of directories: `a/**/*.csv` matches `a/x.csv` and `a/b/c/x.csv`. Trying each `**/` kept
and dropped costs 2^n regexes; one regex with `(?:.*/)?` for each backtracks through O(len(path)^n) splits on
a path that does not match. So a pattern without `**/` is fnmatch's own regex (C speed, and fnmatch already
guards its `*`s against backtracking), and one with `**/` runs as an automaton over sets of pattern positions,
built lazily into a DFA: each path character costs one dict lookup once the states it reaches are known.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

MAX_PATTERN = 1000  # characters; a glob longer than this is a mistake, and each new DFA state costs this much
_MAX_CACHED = 65_536  # DFA transitions kept; past this the cache starts over (memory stays bounded)


@dataclass(frozen=True)
class _Step:
    """One position of the pattern; `optional` is `**/`'s choice, `skip` positions ahead when taken empty."""

    kind: Literal["char", "any", "set", "star", "optional"]
    char: str = ""
    chars: re.Pattern[str] | None = None
    skip: int = 0


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A function telling whether a whole string matches `pattern`."""
    if "**/" not in pattern:
        regex = re.compile(fnmatch.translate(pattern))
        return lambda text: regex.match(text) is not None
    return _Automaton(_steps(pattern)).matches


def _steps(pattern: str) -> list[_Step]:
    """fnmatch's reading of `pattern` (`*`, `?`, `[...]`; an unclosed `[` is literal), and `**/` outside
    classes: inside one (`[**/]`) its characters are class members, as fnmatch reads them."""
    steps: list[_Step] = []
    i = 0
    while i < len(pattern):
        char, i = pattern[i], i + 1
        if char == "*" and pattern.startswith("*/", i):
            steps += [_Step("optional", skip=3), _Step("star"), _Step("char", "/")]
            i += 2
        elif char == "*":
            if not steps or steps[-1].kind != "star":
                steps.append(_Step("star"))
        elif char == "?":
            steps.append(_Step("any"))
        elif char == "[" and (end := _class_end(pattern, i)) is not None:
            steps.append(_Step("set", chars=re.compile(fnmatch.translate(pattern[i - 1 : end + 1]))))
            i = end + 1
        else:
            steps.append(_Step("char", char))
    return steps


def _class_end(pattern: str, start: int) -> int | None:
    """Index of the `]` closing the class opened before `start`, found as fnmatch does; None if unclosed."""
    j = start
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    end = pattern.find("]", j)
    return None if end < 0 else end


class _Automaton:
    """The pattern as an NFA over step positions; sets of positions become numbered DFA states as needed."""

    def __init__(self, steps: list[_Step]) -> None:
        self.steps = steps
        self._reset()

    def _reset(self) -> None:
        self.states: list[frozenset[int]] = []
        self.numbers: dict[frozenset[int], int] = {}
        self.moves: list[dict[str, int]] = []
        self.accepting: list[bool] = []
        self.cached = 0
        self._number(self._closure({0}))  # state 0: the start

    def _number(self, states: frozenset[int]) -> int:
        if states not in self.numbers:
            self.numbers[states] = len(self.states)
            self.states.append(states)
            self.moves.append({})
            self.accepting.append(len(self.steps) in states)
        return self.numbers[states]

    def matches(self, text: str) -> bool:
        state = 0
        for char in text:
            following = self.moves[state].get(char)
            if following is None:
                following = self._learn(state, char)
            if not self.states[following]:
                return False
            state = following
        return self.accepting[state]

    def _learn(self, state: int, char: str) -> int:
        """The DFA state after `state` reads `char`, computed from the NFA (O(pattern)) and remembered."""
        positions = self.states[state]
        if self.cached >= _MAX_CACHED:  # forget the DFA built so far: memory stays bounded
            self._reset()
            state = self._number(positions)
        following = self.moves[state][char] = self._number(self._step(positions, char))
        self.cached += 1
        return following

    def _step(self, states: frozenset[int], char: str) -> frozenset[int]:
        reached: set[int] = set()
        for i in states:
            step = self.steps[i] if i < len(self.steps) else None
            if step is not None and step.kind == "star":
                reached.add(i)
            elif step is not None and _reads(step, char):
                reached.add(i + 1)
        return self._closure(reached)

    def _closure(self, states: set[int]) -> frozenset[int]:
        """`states` with every position reachable without reading: past a `*`, either way past `**/`."""
        pending, seen = list(states), set(states)
        while pending:
            for j in self._empty_moves(pending.pop()):
                if j not in seen:
                    seen.add(j)
                    pending.append(j)
        return frozenset(seen)

    def _empty_moves(self, i: int) -> tuple[int, ...]:
        step = self.steps[i] if i < len(self.steps) else None
        if step is not None and step.kind == "star":
            return (i + 1,)
        if step is not None and step.kind == "optional":
            return (i + 1, i + step.skip)
        return ()


def _reads(step: _Step, char: str) -> bool:
    """Whether `step` consumes `char` (a `*` stays put and `**/`'s choice reads nothing: not here)."""
    if step.kind == "any":
        return True
    if step.kind == "char":
        return step.char == char
    return step.kind == "set" and step.chars is not None and step.chars.match(char) is not None
