"""A loss that explodes without becoming nan (Adam at learning rate 1e9) is never silent: one warning naming the
step, the epoch, the loss, the bound and the fix (``--config.train.learning_rate``)."""

from __future__ import annotations

import logging
import math
import re

import pytest

from jaxconv.cli import main
from jaxconv.train.metrics import EXPLODED_LOSS_FACTOR, exploded_loss


def test_exploded_loss_bound_is_orders_of_magnitude_over_chance():
    chance = math.log(2)
    assert exploded_loss(EXPLODED_LOSS_FACTOR * chance * 0.99, 2, 1, 1, 1e-3) is None
    assert exploded_loss(math.nan, 2, 1, 1, 1e-3) is None        # nan is NonFiniteLossError's, not this warning's
    assert exploded_loss(EXPLODED_LOSS_FACTOR * chance * 1.01, 2, 7, 2, 0.5).startswith(
        "the train loss is 700 at step 7 (epoch 2), over 1000x the loss at chance (ln 2 = 0.693)")


@pytest.mark.slow  # a training run
def test_adam_at_a_huge_learning_rate_warns_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="jaxconv")
    rc = main(["train", "text_cnn", "--workdir", str(tmp_path / "w"), "--config.train.optimizer=adam",
               "--config.train.learning_rate=1e9", "--config.train.epochs=1", "--config.data.synthetic.num_examples=200",
               "--config.model.filters=4", "--config.model.embed_dim=8", "--config.train.log_every_steps=1",
               "--config.progress=false", "--config.tensorboard=false"])
    assert rc == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "jaxconv.train"]
    assert len(warnings) == 1, warnings
    assert re.fullmatch(r"the train loss is [0-9.e+]+ at step \d+ \(epoch 1\), over 1000x the loss at chance \(ln 2 = "
                        r"0\.693\): training has diverged though no loss is nan\. Lower the learning rate "
                        r"\(--config\.train\.learning_rate, now 1e\+09\) and train again in a new --workdir\.",
                        warnings[0]), warnings[0]
    loss = float(warnings[0].split()[4])
    assert loss > 1e3 * math.log(2)
