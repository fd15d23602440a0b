"""Command lines from config dataclasses: one ``--field-name VALUE`` option per field, its help
from the field's documented meaning, and errors as one line.

A config field documents itself with :func:`option` (``dataclasses.field`` metadata: ``help``,
``choices``, ``low`` (smallest allowed value), ``resumable`` (may change when a run is resumed,
see jdl.runs.run_dir)); a subclass that only changes a default (``epochs: int = 40``) keeps the
documentation of the class it overrides. A field without metadata takes its help from the
``# comment`` after it in the class source. A config class hides fields its script does not
use by listing them in ``UNUSED`` (a ClassVar): they get no option.

Nothing here imports JAX: ``--help`` of a script answers in well under a second.

Errors: :func:`command` runs a script's main and turns a user error (ValueError, OSError, an
error carrying an ``exit_code`` attribute such as a training interrupted by SIGINT) into one
line on stderr and the exit status 2 (or the error's ``exit_code``); ``--debug`` re-raises it
with its traceback. A bug (any other exception) keeps its traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import sys
import types
import typing
from typing import Any

RESUMABLE_ALWAYS = ("epochs", "log_every", "eval_batch_size", "devices", "parallel", "keep",
                    "checkpoint_every", "data_dir")


def option(default: Any = dataclasses.MISSING, help: str = "", *, choices=None, low=None,
           resumable: bool = False, default_factory=dataclasses.MISSING):
    """A config field with its meaning (``help``), allowed values (``choices``), smallest
    allowed value (``low``: for numbers, each element of a tuple, ignored for None) and
    whether a resumed run may change it (``resumable``)."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "low": low,
            "resumable": resumable}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


# --- documentation of fields -------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _source_comments(cls) -> dict:
    """{field: '# comment' text} read from the class source (fields without metadata)."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in src.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^=]+=.*?#\s*(.+)$", line)
        if m and "noqa" not in m.group(2):
            out[m.group(1)] = m.group(2).strip()
    return out


def field_meta(cls, name: str) -> dict:
    """The documentation of field ``name``: the metadata of the nearest class in ``cls``'s MRO
    that documents it, each key separately (a subclass may restrict choices and keep the help),
    with the ``# comment`` of the source as help where no metadata gives one."""
    meta = {"help": "", "choices": None, "low": None, "resumable": None}
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        for key in meta:
            if meta[key] in (None, "") and f is not None and f.metadata.get(key) not in (None, ""):
                meta[key] = f.metadata[key]
        if not meta["help"] and isinstance(klass, type) and dataclasses.is_dataclass(klass):
            meta["help"] = _source_comments(klass).get(name, "")
    meta["resumable"] = bool(meta["resumable"]) or name in RESUMABLE_ALWAYS
    return meta


def visible_fields(cls) -> list:
    unused = set(getattr(cls, "UNUSED", ()))
    return [f for f in dataclasses.fields(cls) if f.name not in unused]


def check_fields(cfg) -> list:
    """Errors (strings) of ``cfg``'s values against the documented choices and lower bounds."""
    errs = []
    for f in dataclasses.fields(cfg):
        meta, v = field_meta(type(cfg), f.name), getattr(cfg, f.name)
        if meta["choices"] and v not in meta["choices"]:
            errs.append(f"{f.name} must be one of {', '.join(map(str, meta['choices']))}; "
                        f"got {v!r}")
        if meta["low"] is not None and v is not None:
            vals = v if isinstance(v, (tuple, list)) else (v,)
            if any(x < meta["low"] for x in vals):
                errs.append(f"{f.name} must be >= {meta['low']}"
                            f"{' (each)' if isinstance(v, (tuple, list)) else ''}, got {v!r}")
    return errs


# --- parsing values ----------------------------------------------------------------------------
def _inner(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return [a for a in typing.get_args(tp) if a is not type(None)][0], True
    return tp, False


def _metavar(tp) -> str:
    tp, optional = _inner(tp)
    if typing.get_origin(tp) in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (int,)
        m = f"{_metavar(inner)}[,{_metavar(inner)}...]"
    else:
        m = {int: "N", float: "X", bool: "BOOL", str: "TEXT"}.get(tp, "VALUE")
    return f"{m}|none" if optional else m


def parse_value(tp, text: str):
    """``text`` as a value of type ``tp`` (int, float, bool, str, Optional[...], tuple[...])."""
    tp, optional = _inner(tp)
    if optional and text.lower() in ("none", "null"):
        return None
    if typing.get_origin(tp) in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (int,)
        return tuple(parse_value(inner, t) for t in text.replace(",", " ").split())
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    try:
        return tp(text)
    except (TypeError, ValueError):
        kind = {int: "an integer", float: "a number"}.get(tp, getattr(tp, "__name__", "a value"))
        raise ValueError(f"expected {kind}{' or none' if optional else ''}, got {text!r}") \
            from None


class _Value:
    """argparse ``type=``: converts with :func:`parse_value`; its name is what argparse says."""

    def __init__(self, tp):
        self.tp = tp
        self.__name__ = _metavar(tp)

    def __call__(self, text):
        try:
            return parse_value(self.tp, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit status 2), without prefix matching."""

    def __init__(self, *a, **kw):
        kw.setdefault("allow_abbrev", False)
        super().__init__(*a, **kw)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _help(meta: dict, default, checkpoints: bool) -> str:
    text = meta["help"] or ""
    if meta["choices"]:
        text += f" [choices: {', '.join(map(str, meta['choices']))}]"
    if isinstance(default, tuple):
        default = ",".join(map(str, default))
    if "(default:" not in text:
        text += f" (default: {default})"
    if meta["resumable"] and checkpoints:
        text += " [may change on --resume]"
    return text.strip()


def build_parser(config_cls, description: str = "", checkpoints: bool = True,
                 prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``config_cls``: one option per visible field (``--batch-size``; the
    underscore spelling ``--batch_size`` is accepted without being listed), then --workdir,
    --overwrite, --debug, --no-progress, and when the script writes checkpoints --resume,
    --resume-step and --stretch-schedule."""
    hints = typing.get_type_hints(config_cls)
    p = OneLineParser(prog=prog, description=description,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("the experiment's settings")
    for f in visible_fields(config_cls):
        meta, tp = field_meta(config_cls, f.name), hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        dash = f"--{f.name.replace('_', '-')}"
        g.add_argument(dash, dest=f.name, type=_Value(tp), default=default,
                       metavar=_metavar(tp), help=_help(meta, default, checkpoints))
        if dash != f"--{f.name}":
            g.add_argument(f"--{f.name}", dest=f.name, type=_Value(tp), default=default,
                           help=argparse.SUPPRESS)
    r = p.add_argument_group("the run directory")
    r.add_argument("--workdir", default=None, metavar="DIR",
                   help="output folder, relative to the current directory (default "
                        "runs/<experiment>)")
    if checkpoints:
        r.add_argument("--resume", action="store_true",
                       help="continue the run in --workdir from its newest checkpoint; only "
                            "the resumable settings may differ from the stored config.json")
        r.add_argument("--resume-step", type=int, default=None, metavar="STEP",
                       help="continue from this checkpoint step (implies --resume)")
        r.add_argument("--skip-corrupt", action="store_true",
                       help="on --resume, if the newest checkpoint fails its checksum, resume "
                            "from the newest intact one")
        r.add_argument("--stretch-schedule", action="store_true",
                       help="on --resume with more epochs, stretch the learning-rate schedule "
                            "to the new length (default: keep the original run's length)")
    r.add_argument("--overwrite", action="store_true",
                   help="delete the run already in --workdir and start a new one")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress bar (per-epoch lines are still printed)")
    r.add_argument("--debug", action="store_true",
                   help="show the traceback of an error instead of its one-line message")
    for name in ("resume", "resume_step", "stretch_schedule", "skip_corrupt"):   # read either way
        p.set_defaults(**{name: None if name == "resume_step" else False})
    return p


# --- errors ------------------------------------------------------------------------------------
def with_option(message: str, config_cls=None) -> str:
    """``message`` followed by the command-line options of the config fields it names."""
    if config_cls is None or not dataclasses.is_dataclass(config_cls) or " --" in message:
        return message
    named = [f.name for f in visible_fields(config_cls)
             if re.search(rf"(?<![\w-]){f.name}(?![\w-])", message)]
    if not named or any(f"--{n.replace('_', '-')}" in message for n in named):
        return message
    return f"{message} (change {', '.join('--' + n.replace('_', '-') for n in named)})"


def is_user_error(e: BaseException) -> bool:
    return hasattr(e, "exit_code") or isinstance(e, (ValueError, OSError, KeyboardInterrupt,
                                                     LookupError)) \
        or type(e).__name__ == "CheckpointError"


def command(name: str, config_cls=None, argv=None):
    """The error handling of a script's main: ``with command(name, Config, argv): ...`` turns
    a user error into one line ``<name>: <message> (change --option)`` on stderr and
    ``SystemExit(2)`` (or the error's ``exit_code``); ``--debug`` in ``argv`` (or sys.argv)
    lets it through with its traceback."""
    return _Command(name, config_cls, argv)


def script(name: str, config_cls=None):
    """Decorator of a script's ``main(argv=None, ...)``: its errors as :func:`command` says."""
    def wrap(fn):
        @functools.wraps(fn)
        def wrapped(argv=None, *args, **kw):
            with command(name, config_cls, argv):
                return fn(argv, *args, **kw)
        return wrapped
    return wrap


class _Command:
    def __init__(self, name, config_cls, argv):
        self.name, self.config_cls = name, config_cls
        self.debug = "--debug" in (sys.argv[1:] if argv is None else argv)

    def __enter__(self):
        return self

    def __exit__(self, tp, e, tb):
        if e is None or self.debug or isinstance(e, SystemExit) or not is_user_error(e):
            return False
        code = getattr(e, "exit_code", None)
        if isinstance(e, KeyboardInterrupt) and code is None:
            msg, code = "interrupted", 130
        else:
            msg = " ".join(str(e).split()) or type(e).__name__
        if code is None:
            code = 2
            msg = with_option(msg, self.config_cls)
        print(f"{self.name}: {msg}", file=sys.stderr, flush=True)
        raise SystemExit(code) from None

