"""Job handlers: the ``TUBE=MODULE:FUNCTION`` spec, importing it, and the job info it gets.

A handler is called as ``handler(data, job)``: ``data`` is the decoded JSON body and ``job``
a :class:`JobInfo` with ``.id``, ``.tube`` and ``.attempt`` (1-based).  It does its work
before it returns: an ``async def`` or generator function would only return a coroutine or
generator, its body never run, so such handlers are refused (:func:`check_handler`) and a
call that returns one fails its job for good (:func:`returned_unrun`).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beanfleet.errors import ConfigError, PermanentFailure
from beanfleet.names import check_tube
from beanfleet.wire.jobref import JobRef

Handler = Callable[[Any, "JobInfo"], object]

_DOTTED_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class JobInfo:
    """What a handler learns about its job besides the body.

    ``id`` is the id the producer got from ``put``: a retry releases the same job.
    ``attempt`` (1-based) counts every start of the job, including those that killed their
    worker, from beanstalkd's own ``stats-job`` counters (see
    :func:`beanfleet.work.outcome.attempt_of`), so it survives worker restarts.  Those counters
    cost a round trip, so unless the worker already has them it asks on first access: a
    handler that never reads ``attempt`` costs none.
    """

    __slots__ = ("_attempt", "_fetch", "id", "tube")

    def __init__(
        self,
        job_id: int | JobRef,
        tube: str,
        attempt: int | None,
        fetch: Callable[[], int] | None = None,
    ) -> None:
        self.id = job_id
        self.tube = tube
        self._attempt = attempt
        self._fetch = fetch

    @property
    def attempt(self) -> int:
        if self._attempt is None:
            if self._fetch is None:
                raise AttributeError("attempt is not known for this job")
            self._attempt = self._fetch()
        return self._attempt

    @property
    def known_attempt(self) -> int | None:
        """The attempt if the worker has it already (log lines use this: no round trip)."""
        return self._attempt

    def __repr__(self) -> str:
        attempt = "?" if self._attempt is None else self._attempt
        return f"JobInfo(id={self.id}, tube={self.tube!r}, attempt={attempt})"


@dataclass(frozen=True)
class HandlerSpec:
    """One ``--tube TUBE=MODULE:FUNCTION`` mapping."""

    tube: str
    module: str
    function: str

    @property
    def target(self) -> str:
        return f"{self.module}:{self.function}"

    @classmethod
    def parse(cls, text: str) -> HandlerSpec:
        tube, sep, target = text.partition("=")
        module, colon, function = target.partition(":")
        if not sep or not colon or not tube:
            raise ConfigError(f"invalid handler spec {text!r}: expected TUBE=MODULE:FUNCTION")
        check_tube(tube)
        if not _DOTTED_RE.match(module):
            raise ConfigError(f"invalid handler spec {text!r}: {module!r} is not a module path")
        if not _DOTTED_RE.match(function):
            raise ConfigError(f"invalid handler spec {text!r}: {function!r} is not a function name")
        return cls(tube, module, function)

    def load(self) -> Handler:
        """Import the module and return the callable, or raise ConfigError in one line."""
        try:
            obj: object = importlib.import_module(self.module)
        except SystemExit as exc:  # sys.exit() in module code: say which module did it
            raise ConfigError(
                f"cannot import handler {self.target} for tube {self.tube!r}: module "
                f"{self.module!r} called sys.exit({exc.code!r}) while being imported"
            ) from None
        except Exception as exc:  # any failure of user code at import time is a config error
            raise ConfigError(
                f"cannot import handler {self.target} for tube {self.tube!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for name in self.function.split("."):
            try:
                obj = getattr(obj, name)
            except AttributeError:
                raise ConfigError(
                    f"cannot import handler {self.target} for tube {self.tube!r}: "
                    f"module {self.module!r} has no attribute {self.function!r}"
                ) from None
        if not callable(obj):
            raise ConfigError(f"handler {self.target} for tube {self.tube!r} is not callable")
        check_handler(self.tube, obj, self.target)
        handler: Handler = obj
        return handler


_WRAP_ASYNC = "def handler(data, job): asyncio.run(handle(data, job))"
# What calling each kind returns without running its body, and how to make it run.
_UNRUN_KINDS: tuple[tuple[Callable[[object], bool], str, str], ...] = (
    (inspect.iscoroutinefunction, "an async function", f"wrap it in {_WRAP_ASYNC}"),
    (
        inspect.isasyncgenfunction,
        "an async generator function",
        f"make it a plain async function and wrap that in {_WRAP_ASYNC}",
    ),
    (
        inspect.isgeneratorfunction,
        "a generator function",
        "make it return instead of yield, or wrap it in "
        "def handler(data, job): list(handle(data, job))",
    ),
)


def check_handler(tube: str, handler: object, name: str | None = None) -> None:
    """Refuse a handler whose call would not run its body (async def, generator function),
    whose jobs would otherwise be deleted undone; raise ConfigError in one line."""
    # A callable object is judged by its __call__ (inspect sees through partials itself).
    targets = [handler]
    if not inspect.isroutine(handler) and not inspect.isclass(handler):
        targets.append(getattr(type(handler), "__call__", None))  # noqa: B004 - not a test
    for test, kind, hint in _UNRUN_KINDS:
        if any(test(target) for target in targets):
            name = name or getattr(handler, "__qualname__", None) or repr(handler)
            raise ConfigError(
                f"handler {name} for tube {tube!r} is {kind}: calling it does not run it, "
                f"so its jobs would be deleted undone; {hint}"
            )


def returned_unrun(result: object) -> PermanentFailure | None:
    """The failure of a handler call that returned a coroutine, generator or other
    awaitable (a lambda or wrapper around an async function, which :func:`check_handler`
    cannot see): the work was not done, and running it again cannot help.  The coroutine or
    generator is closed, so it never warns "never awaited".  None for any other value."""
    if inspect.iscoroutine(result):
        kind = "a coroutine"
    elif inspect.isgenerator(result):
        kind = "a generator"
    elif inspect.isasyncgen(result):
        kind = "an async generator"
    elif inspect.isawaitable(result):
        kind = f"an awaitable ({type(result).__name__})"
    else:
        return None
    close = getattr(result, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
    return PermanentFailure(
        f"the handler returned {kind} instead of doing its work (an async function or "
        f"generator behind a wrapper?); run it to the end inside the handler, e.g. "
        f"{_WRAP_ASYNC}"
    )


def load_handlers(specs: list[str]) -> dict[str, Handler]:
    """Parse and import every spec; one handler per tube."""
    handlers: dict[str, Handler] = {}
    for text in specs:
        spec = HandlerSpec.parse(text)
        if spec.tube in handlers:
            raise ConfigError(f"tube {spec.tube!r} is given more than one handler")
        handlers[spec.tube] = spec.load()
    return handlers
