"""TinyGPT's tied embedding through save_model / load_checkpoint: stored once, loaded as one array."""

import numpy as np

from tinytorch.core import io
from tinytorch.language import CharTokenizer, TinyGPT
from tinytorch.language.training import load_checkpoint, save_model


def test_tied_embedding_is_stored_once_and_comes_back_tied(tmp_path):
    tok = CharTokenizer().fit("abcdefgh")
    model = TinyGPT(tok.vocab_size, d_model=16, num_heads=2, num_layers=1, max_seq_len=8)
    assert model.lm_head.weight is model.wte.weight
    path = tmp_path / "lm.safetensors"
    save_model(path, model, tok)
    info = io.inspect(path)
    assert info.aliases == {"model.lm_head.weight": "model.wte.weight"}
    assert "model.lm_head.weight" not in [t.name for t in info.tensors]
    assert info.num_parameters == model.num_parameters()  # the tied matrix once, as the model counts it
    loaded, _, _ = load_checkpoint(path)
    assert loaded.lm_head.weight is loaded.wte.weight
    np.testing.assert_array_equal(loaded.wte.weight.data, model.wte.weight.data)
    ids = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(loaded(ids).data, model.eval()(ids).data)


def test_untied_model_stores_both_matrices(tmp_path):
    tok = CharTokenizer().fit("abcd")
    model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=4, tie_weights=False)
    path = tmp_path / "lm.safetensors"
    save_model(path, model, tok)
    assert io.inspect(path).aliases == {}
    loaded, _, _ = load_checkpoint(path)
    assert loaded.lm_head.weight is not loaded.wte.weight
    np.testing.assert_array_equal(loaded.lm_head.weight.data, model.lm_head.weight.data)
