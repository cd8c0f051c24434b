"""The holistic term's critic: SAGAN self-attention against a hand computation, one score per
(map, image) pair, and a one-line refusal of maps or images it was not built for."""

import math

import pytest
import torch

from kdistill.errors import KDistillError
from kdistill.models import create_model
from kdistill.models.dense import SelfAttention


def test_self_attention_matches_a_hand_computation_and_starts_as_the_identity():
    block = SelfAttention(1)
    x = torch.tensor([[[[0.0, 1.0]]]])  # one channel, two positions
    assert torch.equal(block(x), x)  # gamma = 0 at the start
    with torch.no_grad():
        for conv in (block.query, block.key, block.value):
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        block.gamma.fill_(1.0)
    # position 0 attends [0, 0] -> softmax [1/2, 1/2] -> 0.5; position 1 attends [0, 1]
    # -> [1/(1+e), e/(1+e)] -> e/(1+e)
    expected = torch.tensor([0.0 + 0.5, 1.0 + math.e / (1 + math.e)])
    assert torch.allclose(block(x).flatten(), expected)


def test_discriminator_scores_each_pair_and_refuses_other_shapes():
    discriminator = create_model("seg-discriminator", num_classes=3, in_channels=1, channels=2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules())
    scores = discriminator(torch.rand(4, 3, 32, 32), torch.rand(4, 1, 32, 32))
    assert scores.shape == (4,)
    with pytest.raises(KDistillError, match="built for 3-class maps of 1-channel images"):
        discriminator(torch.rand(4, 5, 32, 32), torch.rand(4, 1, 32, 32))
