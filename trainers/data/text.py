"""``pydoc_text``: next-character prediction on Python's own documentation, which ships offline.

The standard library's ``pydoc_data.topics`` holds 79 topics, about 465,000 characters of English
(the help texts of ``help('...')``). The split is by topic and fixed (it does not move with
``data.split_seed``, ``val_fraction`` or ``test_fraction``): the topics in a shuffled order
(seed 0) fill the test split to at least 10% of the characters, then validation to 10%, and the
rest trains. A sample is a window of ``context`` characters (input, token ids) and the same window
shifted by one (targets: the next character at every position); windows do not overlap (stride =
``context``) unless ``options.stride`` says otherwise. The metric, accuracy, is then next-character
accuracy over every position. Characters outside printable ASCII are mapped to ASCII where one
exists (curly quotes, dashes, the ellipsis) and otherwise to one unknown symbol.

Options: ``context`` (default 32), ``stride`` (default ``context``), ``max_train`` / ``max_eval``
(a seeded subsample of windows for fast runs; seed ``data.split_seed``).
"""
from __future__ import annotations

import random
from functools import lru_cache

import torch
from torch.utils.data import TensorDataset

from trainers.data.bundle import DataBundle
from trainers.data.settings import DataSettings
from trainers.errors import SetupError

SYMBOLS = "\n" + "".join(chr(code) for code in range(32, 127))
UNKNOWN = len(SYMBOLS)                 # one extra class for everything else
VOCAB_SIZE = len(SYMBOLS) + 1
ASCII_FORMS = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
               "\u2014": "-", "\u2026": "...", "\t": "    "}
SPLIT_SHARE = 0.10                     # at least this share of the characters: test, then val
OPTIONS = ("context", "stride", "max_train", "max_eval")


def topics() -> dict[str, str]:
    """The documentation topics of this Python (``pydoc_data.topics.topics``)."""
    from pydoc_data.topics import topics as texts

    return dict(texts)


@lru_cache(maxsize=1)
def topic_split() -> dict[str, tuple[str, ...]]:
    """Topic names of each split (``train``, ``val``, ``test``): fixed, by the rule above."""
    texts = topics()
    order = sorted(texts)
    random.Random(0).shuffle(order)
    total = sum(len(text) for text in texts.values())
    split: dict[str, list[str]] = {"test": [], "val": [], "train": []}
    filled = {"test": 0, "val": 0}
    for name in order:
        target = next((part for part in ("test", "val")
                       if filled[part] < SPLIT_SHARE * total), "train")
        split[target].append(name)
        if target in filled:
            filled[target] += len(texts[name])
    return {part: tuple(sorted(names)) for part, names in split.items()}


PREPROCESSING = {   # what an exported model's manifest tells its users (it reads token ids)
    "known": True,
    "description": (
        f"character ids: a character's index in trainers.data.text.SYMBOLS ('\\n', then the "
        f"printable ASCII characters 32-126, so id = ord(c) - 31 for those), {UNKNOWN} for any "
        f"other character after typographic quotes and dashes become ASCII "
        f"(trainers.data.text.encode); windows of data.options.context ids"),
    "symbols": SYMBOLS,
    "unknown_id": UNKNOWN,
}


def encode(text: str) -> torch.Tensor:
    """Token ids (int64) of ``text``: its position in ``SYMBOLS``, or ``UNKNOWN``."""
    index = {symbol: i for i, symbol in enumerate(SYMBOLS)}
    plain = "".join(ASCII_FORMS.get(char, char) for char in text)
    return torch.tensor([index.get(char, UNKNOWN) for char in plain], dtype=torch.long)


def decode(ids: torch.Tensor) -> str:
    """The text of token ids (``UNKNOWN`` shows as U+FFFD)."""
    return "".join(SYMBOLS[i] if i < UNKNOWN else "\ufffd" for i in ids.tolist())


def windows(ids: torch.Tensor, context: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (n, context) and next-character targets (n, context) from one token stream."""
    starts = torch.arange(0, ids.numel() - context, stride)
    offsets = torch.arange(context)
    x = ids[starts[:, None] + offsets]
    return x, ids[starts[:, None] + offsets + 1]


def load_pydoc_text(settings: DataSettings) -> DataBundle:
    """The ``pydoc_text`` data set (rules in the module docstring)."""
    opts = dict(settings.options)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise SetupError(f"data.options for pydoc_text must be among {list(OPTIONS)}, got "
                         f"{unknown}")
    context = _positive(opts, "context", 32)
    stride = _positive(opts, "stride", context)
    texts = topics()
    parts = {}
    for part, names in topic_split().items():
        stream = encode("\n\n".join(texts[name] for name in names))
        limit = opts.get("max_train" if part == "train" else "max_eval")
        parts[part] = _subsample(*windows(stream, context, stride), limit, settings.split_seed)
    return DataBundle(parts["train"], parts["val"], parts["test"], VOCAB_SIZE, (context,),
                      "pydoc_text", preprocessing=PREPROCESSING)


def _positive(opts: dict, key: str, default: int) -> int:
    value = opts.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SetupError(f"data.options.{key} must be an integer >= 1, got {value!r}")
    return value


def _subsample(x: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int) -> TensorDataset:
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise SetupError(f"data.options.max_train / max_eval must be an integer >= 1, got "
                             f"{limit!r}")
        if limit < len(x):
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:limit]
            x, y = x[keep.sort().values], y[keep.sort().values]
    return TensorDataset(x, y)
