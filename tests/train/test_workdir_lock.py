"""Two trainings on one workdir: the second refuses in one line naming the first; the first's metrics are whole."""

from __future__ import annotations

import json
import socket

import pytest
from helpers import second_writer_while_first_holds

pytestmark = pytest.mark.slow  # a training run

TINY = ["--config.data.synthetic.num_examples=600", "--config.data.max_buckets=2", "--config.model.embed_dim=16",
        "--config.model.filters=8", "--config.train.batch_size=16", "--config.train.epochs=2",
        "--config.progress=false"]


def test_second_training_on_one_workdir_refuses(tmp_path):
    workdir = tmp_path / "run"
    argv = ["train", "text_cnn", "--workdir", str(workdir), *TINY]
    pid, second = second_writer_while_first_holds(f"""
        from jaxconv.train import trainer
        original, held = trainer.Trainer._epoch, []
        def epoch(self, e):
            if not held:   # hold the workdir in the middle of the run until told to go on
                held.append(1)
                hold()
            return original(self, e)
        trainer.Trainer._epoch = epoch
        from jaxconv.cli import main
        sys.exit(main({argv!r}))
    """, argv)
    err = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(err) == 1 and "Traceback" not in second.stderr, second.stderr
    assert f"pid {pid} on host {socket.gethostname()}" in err[0] and str(workdir / ".lock") in err[0], err[0]
    assert not (workdir / ".lock").exists()
    records = [json.dumps(json.loads(line), sort_keys=True) for line in (workdir / "metrics.jsonl").open()]
    assert records and len(records) == len(set(records))
    steps = [(r["split"], r["step"]) for r in map(json.loads, records)]
    assert len(steps) == len(set(steps))
