"""One checkpointed phase runner: `nodes.migrate`, `cluster.upgrade` and `nat.rotate` are each a list of named steps.

An operation that stops halfway (a failed `pulumi up`, Ctrl-C, a closed laptop) must go on where it
stopped, from any machine. Each engine lists its steps as explicit (name, callable) pairs; the runner
keeps the names of the finished ones in a `Store` every operator sees (a ConfigMap in the cluster,
SSM parameters for NAT), under the same rules for all three:
- the state is saved before the first step, so a failure in it still leaves something to resume;
- each finished step is saved at once; a rerun starts at the first unfinished step;
- the store is cleared when the last step has finished;
- a saved step the run does not have is refused, never skipped;
- a stop says how to go on, and offers resuming only when the store holds progress (`ResumeHint`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from infra.ops.errors import Interrupted, Refused

State = dict[str, Any]
FINISHED = "phases"  # the state's list of finished step names (the key migration checkpoints always used)


class Store(Protocol):
    """Load/save/clear of one operation's state; `exists`: it holds progress, as this process last saw it."""

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
