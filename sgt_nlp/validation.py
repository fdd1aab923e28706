"""Checks of command-line options, output folders and inputs that run before any model pass.

A bad option or file must fail in the first second with a message that names the option, file, line or field,
never after an hour of explaining with a traceback (or, worse, run and give silently wrong numbers). The
``sgt-nlp`` CLI prints these errors without a traceback: :class:`UsageError` (a bad option value or output
folder) exits with status 2, every other error with status 1 (see :func:`sgt_nlp.cli.main`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path


class UsageError(ValueError):
    """A command-line option has a value that cannot work; the CLI exits with status 2 (as argparse does)."""


def check_positive(option: str, value: int | None, *, allow_none: bool = True) -> None:
    """``value`` must be an integer >= 1 (``None`` means "not given" where ``allow_none``)."""
    if value is None and allow_none:
        return
    if value is None or value < 1:
        raise UsageError(f"{option} must be a positive integer, got {value}")


def check_number(
    option: str,
    value: float | None,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = True,
) -> None:
    """``value`` must be a finite number within ``[low, high]`` (``(`` / ``)`` where ``low_open`` /
    ``high_open``); NaN and infinities are refused, however wide the range (they train to NaN weights and
    score nonsense without an error)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise UsageError(f"{option} must be in {span}, got {value!r}")


def check_finite_fields(values: object, prefix: str = "--") -> None:
    """Every float of a dataclass instance, also inside tuples and lists, must be finite: an option or spec
    field that is NaN or infinite is refused, naming ``prefix + field``."""
    assert dataclasses.is_dataclass(values) and not isinstance(values, type)
    for name, value in ((f.name, getattr(values, f.name)) for f in dataclasses.fields(values)):
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                raise UsageError(f"{prefix}{name} must be a finite number, got {value!r}")


def parse_name_list(option: str, text: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """A comma-separated option value as a tuple of known names; empty lists and unknown names are errors."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise UsageError(
            f"{option} {text!r} names nothing; give a comma-separated list of: {', '.join(allowed)}"
        )
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise UsageError(f"{option}: unknown {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise UsageError(f"{option} {text!r} repeats a name")
    return names


def parse_seeds(option: str, text: str) -> tuple[int, ...]:
    """A comma-separated list of seeds (non-negative integers, none repeated)."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or not all(part.isdigit() for part in parts) or len(set(map(int, parts))) != len(parts):
        raise UsageError(f"{option} {text!r}: give distinct non-negative integers, comma-separated")
    return tuple(int(part) for part in parts)


def check_device(device: str) -> None:
    """``cpu``, ``auto``, ``cuda`` or ``cuda:N`` that this machine has; anything else is refused up front."""
    import torch

    if device in ("cpu", "auto"):
        return
    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError("--device mps: this machine has no usable MPS device; use --device cpu or auto")
        return
    if not device.startswith("cuda"):
        raise UsageError(f"--device {device!r} is not one of cpu, auto, cuda, cuda:N, mps")
    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {device}: no CUDA GPU is visible (torch.cuda.is_available() is False); "
            "use --device cpu or auto"
        )
    index = device.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


# ---- output folders ----------------------------------------------------------------------------------------


def check_output_dir(
    path: str | Path, *, overwrite: bool, what: str, flag: str = "--overwrite_output_dir"
) -> None:
    """Refuse an output folder that is a file, or one that holds anything unless ``overwrite`` was asked
    for."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UsageError(
            f"--output_dir {path} already holds {what}; choose a new folder or pass {flag} to replace it"
        )


def claim_output_dir(
    path: str | Path,
    *,
    overwrite: bool,
    what: str,
    command: str,
    flag: str = "--overwrite_output_dir",
) -> str | None:
    """:func:`check_output_dir`, then claim the folder for this run (on the main process; others get None).

    Of two runs started on one empty folder only the first gets the claim, the second is refused before any
    work; the writer checks the token again before it replaces anything (:func:`~sgt_nlp.files.holds_claim`),
    so a folder another run took over since (with ``overwrite``) is never cleared under it.
    """
    import os

    from .files import CLAIM_FILE, is_stale_claim_only, write_claim

    if int(os.environ.get("RANK", "0")) != 0:
        return None  # the main process checks and claims (here, the claim could be mistaken for old files)
    stale = is_stale_claim_only(path)  # a run stopped before writing: nothing of it to lose
    check_output_dir(path, overwrite=overwrite or stale, what=what, flag=flag)
    try:
        return write_claim(path, command, replace=overwrite or stale)
    except FileExistsError:
        raise UsageError(
            f"--output_dir {path} was claimed by another run a moment ago ({Path(path) / CLAIM_FILE}); "
            f"choose a new folder or pass {flag} to take it over"
        ) from None


@contextlib.contextmanager
def output_dir_claim(
    path: str | Path,
    *,
    overwrite: bool,
    what: str,
    command: str,
    flag: str = "--overwrite_output_dir",
) -> Iterator[str | None]:
    """:func:`claim_output_dir` for the duration of a ``with`` block; the claim goes when the block ends,
    and a folder this call created goes too when the block fails with it still empty (no partial output)."""
    created = not Path(path).exists()
    token = claim_output_dir(path, overwrite=overwrite, what=what, command=command, flag=flag)
    try:
        yield token
    except BaseException:
        release_claim(path, token, remove_empty=created)
        raise
    release_claim(path, token, remove_empty=False)


def release_claim(path: str | Path, token: str | None, *, remove_empty: bool) -> None:
    """Remove this run's claim on ``path`` (not another run's), and the folder if ``remove_empty`` and it
    holds nothing else."""
    from .files import CLAIM_FILE, holds_claim

    if token is None:
        return
    folder = Path(path)
    if holds_claim(folder, token):
        (folder / CLAIM_FILE).unlink(missing_ok=True)
    if remove_empty and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def remove_outputs(folder: str | Path, names: Iterable[str], subfolders: Iterable[str] = ()) -> list[str]:
    """Delete the named files and folders (and ``subfolders`` globs) under ``folder``; returns what went.

    Used before writing into an existing output folder, so that nothing of an earlier run (a method or removal
    mode no longer evaluated, an old checkpoint) sits beside the new outputs and gets read as theirs.
    """
    folder = Path(folder)
    removed = []
    candidates = [folder / name for name in names] + [
        p for pattern in subfolders for p in folder.glob(pattern)
    ]
    for path in candidates:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path.name)
    return removed


# ---- inputs ------------------------------------------------------------------------------------------------


def check_max_length(
    tokenizer,
    max_length: int,
    query_words: Sequence[Sequence[str]],
    where: Sequence[str],
    option: str = "--max_length",
) -> None:
    """Every input must leave room for at least one document piece after its query and the special tokens.

    With less, a tokenizer asked to cut only the document cannot cut and returns the input uncut, so the
    model would see (and the report would claim to have cut at ``max_length``) something else. ``where`` names
    each example (file, line, field) for the message.
    """
    check_positive(option, max_length, allow_none=False)
    with_query = [i for i, words in enumerate(query_words) if words]
    specials = tokenizer.num_special_tokens_to_add(pair=bool(with_query))
    if not with_query:
        if max_length <= specials:
            raise UsageError(
                f"{option} {max_length} leaves no room for text: the special tokens alone take {specials}"
            )
        return
    pieces = tokenizer(
        [list(query_words[i]) for i in with_query], is_split_into_words=True, add_special_tokens=False
    )
    for i, ids in zip(with_query, pieces["input_ids"], strict=True):
        needed = len(ids) + specials
        if max_length <= needed:
            raise UsageError(
                f"{option} {max_length} leaves no room for the document of {where[i]}: its query and the "
                f"special tokens take {needed} pieces"
            )


def input_lengths(
    tokenizer, max_length: int, words: Sequence[Sequence[str]], query_words: Sequence[Sequence[str]]
) -> list[int]:
    """The word pieces each (document, query) pair takes, special tokens included, at most ``max_length``."""
    has_pair = any(query_words)
    specials = tokenizer.num_special_tokens_to_add(pair=has_pair)
    lengths = []
    for texts in (words, query_words) if has_pair else (words,):
        lists = [list(w) for w in texts]
        encoded = tokenizer(lists, is_split_into_words=True, add_special_tokens=False, verbose=False)
        lengths.append([len(ids) for ids in encoded["input_ids"]])
    return [min(max_length, sum(parts) + specials) for parts in zip(*lengths, strict=True)]


def check_position_limit(
    max_length: int,
    lengths: Callable[[], Sequence[int]],
    where: Callable[[int], str],
    limit: int | None,
    model: str,
    option: str = "--max_length",
) -> None:
    """Inputs may not be longer than the positions the model has learned (``limit``, None: no limit): the
    forward would fail mid-run with "The size of tensor a (1602) must match the size of tensor b (512)".
    ``lengths()`` gives each input's pieces (only called when ``max_length`` exceeds the limit); ``where(i)``
    names input ``i`` for the message."""
    if limit is None or max_length <= limit:
        return
    for i, length in enumerate(lengths()):
        if length > limit:
            raise UsageError(
                f"{option} {max_length} is more than the {limit} positions {model} reads, and {where(i)} "
                f"takes {length} pieces; give {option} {limit} or less"
            )


def check_readable_texts(
    tokenizer, texts: Sequence[Sequence[str]] | Sequence[str], where: Callable[[int], str]
) -> None:
    """Every text (a word list, or a string) must hold a token the model reads as text: one made only of
    special tokens (``[SEP] [CLS]``) or zero-width characters would get a prediction and an all-zero heatmap,
    where an empty text is refused; it is refused alike, naming ``where(i)``. ``[UNK]`` counts as text."""
    from .masking import special_ids_of

    special = set(special_ids_of(tokenizer))
    as_words = bool(texts) and not isinstance(texts[0], str)
    batch = [list(t) for t in texts] if as_words else list(texts)
    for start in range(0, len(batch), 256):
        chunk = batch[start : start + 256]
        encoded = tokenizer(chunk, is_split_into_words=as_words, add_special_tokens=False, verbose=False)
        for offset, ids in enumerate(encoded["input_ids"]):
            if all(token in special for token in ids):
                raise ValueError(
                    f"{where(start + offset)}: no token the model reads as text (only special tokens or "
                    "zero-width characters, if anything); remove it or give it words"
                )


# ---- tables (CSV / JSON lines) -----------------------------------------------------------------------------


class InputFileError(ValueError):
    """A data file has a bad row; ``path``, ``line`` (1-based, when the format has lines) and ``field`` say
    where."""

    def __init__(self, path: str | Path, line: int | None, field_name: str | None, message: str) -> None:
        self.path, self.line, self.field = str(path), line, field_name
        where = self.path + (f", line {line}" if line is not None else "")
        where += f", field '{field_name}'" if field_name else ""
        super().__init__(f"{where}: {message}")


def first_data_line(path: str | Path) -> int | None:
    """The file line of row 0: 2 for CSV (after the header), 1 for JSON lines; None for a JSON array."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return 2
    if suffix == ".jsonl":
        return 1
    if suffix == ".json":
        with open(path, "rb") as handle:
            start = handle.read(4096).lstrip()
        return None if start.startswith(b"[") else 1
    return None


def check_table_cells(path: str | Path, columns: dict[str, Sequence[object]], first_line: int | None) -> None:
    """Every row must have a value in every given column: an empty cell is read as ``None`` (CSV) and would
    become a class of its own (labels) or crash the tokenizer mid-run (text)."""
    for name, values in columns.items():
        for row, value in enumerate(values):
            if value is None or (isinstance(value, str) and not value.strip()):
                line = None if first_line is None else first_line + row
                where = "" if line is not None else f" (row {row})"
                raise InputFileError(path, line, name, f"empty cell{where}")


def canonical_label(value: object) -> str:
    """THE spelling of a label, in every split and file: surrounding whitespace stripped, and a number in one
    form (``1``, ``1.0`` and ``01`` are class ``1``; ``0.50`` is ``0.5``). Without it ``pos`` and ``pos ``,
    or ``1`` and ``1.0``, became different classes without a word. Case is kept (``Pos`` is not ``pos``):
    labels that differ only in case are refused by :func:`check_label_spellings`."""
    text = str(value).strip()
    if isinstance(value, bool):
        return text
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number) or not any(c.isdigit() for c in text):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def check_label_spellings(labels: Iterable[str], where: str) -> None:
    """Two labels of a split that differ only in case (``pos`` and ``Pos``) are refused: one class spelt
    twice, or two classes no reader can tell apart; either way the file needs fixing."""
    seen: dict[str, str] = {}
    for label in sorted(set(labels)):
        other = seen.setdefault(label.casefold(), label)
        if other != label:
            raise InputFileError(
                where,
                None,
                None,
                f"labels {other!r} and {label!r} differ only in case; spell each class one way",
            )


def sorted_label_names(values: Iterable[object]) -> list[str]:
    """The label set as canonical strings (:func:`canonical_label`), in class-id order: numeric labels by
    value (so that label ``2`` is class 2, not after ``10``), anything else alphabetically."""
    names = {canonical_label(value) for value in values}

    def as_number(name: str) -> float | None:
        try:
            return float(name)
        except ValueError:
            return None

    if names and all(as_number(name) is not None for name in names):
        return sorted(names, key=lambda name: (as_number(name), name))
    return sorted(names)


def run_reporting_errors(name: str, command: Callable[[list[str]], object], argv: list[str]) -> int:
    """Runs ``command(argv)`` the way every ``sgt-nlp`` entry point reports errors: one line on stderr naming
    ``name`` (no traceback unless ``--debug`` is in ``argv``), exit status 2 for a :class:`UsageError` (as
    argparse) and 1 for anything else, 130 when interrupted; 0, or the command's own int status, on
    success."""
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        status = command(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        usage = isinstance(exc, UsageError)
        kind = "" if isinstance(exc, (ValueError, OSError)) else f"{type(exc).__name__}: "
        message = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {message}"
        print(f"{name}: error: {kind}{message}", file=sys.stderr)
        if not usage:
            print(f"(run '{name} ... --debug' for the traceback)", file=sys.stderr)
        return 2 if usage else 1
    return status if isinstance(status, int) else 0
