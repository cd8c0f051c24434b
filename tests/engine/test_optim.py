import pytest

from kdistill.config import ScheduleConfig
from kdistill.engine.optim import learning_rate_at


def test_cosine_with_warmup():
    config = ScheduleConfig(name="cosine", warmup_epochs=1)
    assert learning_rate_at(0, 100, 10, 1.0, config) == pytest.approx(0.1)
    assert learning_rate_at(9, 100, 10, 1.0, config) == pytest.approx(1.0)
    assert learning_rate_at(10, 100, 10, 1.0, config) == pytest.approx(1.0)
    assert learning_rate_at(55, 100, 10, 1.0, config) == pytest.approx(0.5)
    assert learning_rate_at(100, 100, 10, 1.0, config) == pytest.approx(0.0, abs=1e-12)


def test_step_and_exponential_and_constant():
    assert (
        learning_rate_at(25, 100, 10, 1.0, ScheduleConfig(name="step", step_epochs=2, gamma=0.5))
        == 0.5
    )
    assert learning_rate_at(
        20, 100, 10, 1.0, ScheduleConfig(name="exponential", gamma=0.5)
    ) == pytest.approx(0.25)
    assert learning_rate_at(77, 100, 10, 0.3, ScheduleConfig(name="constant")) == 0.3
