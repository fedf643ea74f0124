"""A Keras 3 text model imported from its .keras file with import_model, then dumped on real sentences (SST-2's dev
split) tokenized, indexed and padded as a Keras user does (the Tokenizer's word splitting and word_index,
``pad_sequences``): the dump's predictions and probabilities are ``model.predict``'s, on every sentence. The model
mixes a max-pooled conv branch with a masked average of the embedding (``mask_zero=True``), so the padding side and
the mask both matter."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from conftest import require_shared

import jaxconv
from jaxconv.data import keras_tokenizer
from jaxconv.dump import dump_activations, load_dump

pytestmark = [pytest.mark.slow,  # a Keras model built, saved, imported and dumped
              pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")]


def test_a_keras_model_dumps_with_its_own_predictions_on_real_sentences(tmp_path):
    keras = pytest.importorskip("keras")
    lines = require_shared("stsa.binary.dev").read_text(encoding="latin-1").splitlines()[:300]
    texts = [line.split(" ", 1)[1].strip() for line in lines]
    split = keras_tokenizer()
    counts = Counter(w for t in texts for w in split(t))
    words = [w for w, _ in counts.most_common(399)]
    word_index = {w: i + 1 for i, w in enumerate(words)}                                   # 400 rows with padding
    seqs = [[word_index[w] for w in split(t) if w in word_index] for t in texts]
    ids = keras.utils.pad_sequences(seqs, maxlen=30)                                        # pre, pre

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((30,), dtype="int32")
    emb = L.Embedding(400, 16, mask_zero=True)(inp)
    conv = L.GlobalMaxPooling1D()(L.Conv1D(12, 4, activation="relu", padding="same")(emb))
    mean = L.GlobalAveragePooling1D()(emb)                                                  # masked: words only
    out = L.Dense(2, activation="softmax")(L.Dropout(0.5)(L.Concatenate()([conv, mean])))
    model = keras.Model(inp, out)
    theirs = model.predict(ids, verbose=0)
    model.save(tmp_path / "model.keras")
    (tmp_path / "word_index.json").write_text(json.dumps(word_index))
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")

    run = jaxconv.import_model(tmp_path / "model.keras", tmp_path / "run", vocab=tmp_path / "word_index.json")
    assert run.source["max_difference"] <= 1e-5 and run.fixed_length == 30 and run.tokenizer == "keras"
    np.testing.assert_array_equal(run.encode(texts), ids)
    dump_activations(tmp_path / "run", input=tmp_path / "texts.txt")
    d = load_dump(tmp_path / "run", "texts")
    np.testing.assert_array_equal(d.predictions, theirs.argmax(-1))                         # every sentence
    np.testing.assert_allclose(d.group["probabilities"][...], theirs, atol=1e-5)
