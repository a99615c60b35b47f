"""One checkpointed phase runner: `nodes.migrate`, `cluster.upgrade` and `nat.rotate` are each a list of named steps.

An operation that stops halfway (a failed `pulumi up`, Ctrl-C, a closed laptop) must go on where it
stopped, from any machine. Each engine lists its steps as explicit (name, callable) pairs; the runner
keeps the names of the finished ones in a `Store` every operator sees (a ConfigMap in the cluster,
SSM parameters for NAT), under the same rules for all three:
- the state is saved before the first step, so a failure in it still leaves something to resume;
- each finished step is saved at once; a rerun starts at the first unfinished step;
- the store is cleared when the last step has finished;
- a saved step the run does not have is refused, never skipped;
- a saved state that is not the operation's (bad JSON, another shape) is refused where the store reads it
  (`read_state`, against the engine's `Progress` model), for every entry point alike, and left as found;
- a stop says how to go on, and offers resuming only when the store holds progress (`ResumeHint`).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from infra.ops.errors import Interrupted, Refused

State = dict[str, Any]
FINISHED = "phases"  # the state's list of finished step names (the key migration checkpoints always used)


class Progress(BaseModel):
    """The shape every saved state has: the finished steps. Engines subclass it with the keys they read back, so a
    state missing one is refused when loaded, not a KeyError halfway through a run. Steps may keep more."""

    model_config = ConfigDict(extra="allow", strict=True)

    phases: list[str]


class CorruptState(Refused):
    """The store holds something that is not this operation's state: nothing ran, and it was left as found."""


def read_state(raw: str | None, shape: type[Progress], where: str, repair: str,
               context: dict[str, Any] | None = None) -> State:
    """`raw` (the store's JSON text; None: the object has none) as a state of `shape`, or CorruptState naming `where`,
    the problem and `repair` (how to fix or drop it). `context` reaches the shape's validators (e.g. the stack a
    state must belong to)."""
    state, problem = _parsed(raw, shape, context)
    if problem:
        raise CorruptState(f"{where} does not hold a readable checkpoint: its state {problem}; nothing was changed "
                           f"and it is kept as found. {repair}")
    return state


def _parsed(raw: str | None, shape: type[Progress], context: dict[str, Any] | None) -> tuple[State, str]:
    """(the state, "") or ({}, what is wrong with it)."""
    if raw is None:
        return {}, "is missing"
    try:
        state = json.loads(raw)
    except json.JSONDecodeError as error:
        return {}, f"is not valid JSON ({error.msg} at character {error.pos})"
    if not isinstance(state, dict):
        return {}, f"is a JSON {_json_kind(state)}, not an object"
    try:
        shape.model_validate(state, context=context)
    except ValidationError as error:
        return {}, _problems(error)
    return state, ""


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


def _problems(error: ValidationError) -> str:
    """Pydantic's errors in a few words: "lacks source, target; phases: input should be a valid list"."""
    missing = [".".join(map(str, e["loc"])) for e in error.errors() if e["type"] == "missing"]
    wrong = [": ".join(filter(None, [".".join(map(str, e["loc"])), _message(e["msg"])])) for e in error.errors()
             if e["type"] != "missing"]
    return "; ".join([f"lacks {', '.join(missing)}"] * bool(missing) + wrong)


def _message(text: str) -> str:
    text = text.removeprefix("Value error, ")  # a shape's own validator already says what is wrong
    return text[:1].lower() + text[1:]


class Store(Protocol):
    """Load/save/clear of one operation's state; `exists`: it holds progress, as this process last saw it. `load`
    reads through `read_state`: a state of the wrong shape is CorruptState, never half-used."""

    exists: bool

    @property
    def where(self) -> str: ...

    def load(self) -> State | None: ...

    def save(self, state: State) -> None: ...

    def clear(self) -> None: ...


@dataclass(frozen=True)
class Step:
    name: str                     # kept in the state once finished, so stable across runs
    run: Callable[[State], None]  # may keep finer progress of its own in the state (and save it)
    label: str = ""               # what a person reads when it starts; default the name

    def __str__(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class NextStep:
    """`step` starts now."""

    step: Step


@dataclass(frozen=True)
class Finished:
    """`step` finished and is saved."""

    step: Step


Event = NextStep | Finished


def ignore(_event: Event) -> None:
    """Default progress sink, for engines used as a library."""


class UnknownStep(Refused):
    """The saved state names a step this run does not have (another version or plan wrote it): nothing ran."""


@dataclass
class PhaseRunner:
    """Runs `steps` in order from a state, saving progress to `store` after each."""

    store: Store
    steps: Sequence[Step]
    on_progress: Callable[[Event], None] = ignore
    abandon: str = "delete it to start over"  # how an operator drops a state this run cannot continue

    def finished(self, state: State) -> list[str]:
        """Names of the steps `state` records as finished; refuses a name this run does not have."""
        done = state.setdefault(FINISHED, [])
        names = [step.name for step in self.steps]
        unknown = [name for name in done if name not in names]
        if unknown:
            raise UnknownStep(f"{self.store.where} records step(s) {', '.join(unknown)} that this run does not "
                              f"have ({', '.join(names) or 'none'}); {self.abandon}")
        return done

    def pending(self, state: State) -> list[Step]:
        """The steps a run from `state` would take, in order: every one not finished yet."""
        done = self.finished(state)
        return [step for step in self.steps if step.name not in done]

    def saved(self, resume: bool, what: str, progress: Callable[[State], str], hint: str,
              refused: type[Refused]) -> State | None:
        """The state to go on from when resuming (else None: start afresh). Refuses starting over a run in progress
        (naming its progress and `hint`) and resuming when nothing is saved."""
        state = self.store.load()
        if state and not resume:
            raise refused(f"{what} is already in progress ({progress(state)}); {hint}")
        if resume and not state:
            raise refused(f"no {what} to resume; run without --resume")
        return state

    def run(self, state: State, dry_run: bool = False) -> list[Step]:
        """Run every unfinished step, saving after each, and clear the store after the last; returns the steps
        run. dry_run: only return them (nothing runs, nothing is saved)."""
        todo = self.pending(state)
        if dry_run:
            return todo
        self.store.save(state)
        for step in todo:
            self.on_progress(NextStep(step))
            step.run(state)
            state[FINISHED].append(step.name)
            self.store.save(state)
            self.on_progress(Finished(step))
        self.store.clear()
        return todo


@dataclass(frozen=True)
class ResumeHint:
    """What a stopped run says about going on: `kept` when its store holds progress, else `lost` ("": nothing).

    Added to the message of the `failures` listed (their type is kept, so callers still catch them) and,
    with `interrupts`, to Ctrl-C, which becomes Interrupted(<hint>): "interrupted: <hint>", exit 130.
    """

    kept: str
    lost: str = ""
    failures: tuple[type[BaseException], ...] = ()
    interrupts: bool = False

    def text(self, store: Store) -> str:
        return self.kept if store.exists else self.lost

    @contextmanager
    def around(self, store: Store) -> Iterator[None]:
        try:
            yield
        except KeyboardInterrupt:
            if not self.interrupts:
                raise
            raise Interrupted(self.text(store)) from None
        except self.failures as error:
            text = self.text(store)
            if text:
                error.args = (f"{error}; {text}",)
            raise
