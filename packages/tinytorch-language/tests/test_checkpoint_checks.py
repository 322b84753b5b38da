"""Config and vocabulary checks on a language checkpoint, before any model is built (issue 13)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.core import io
from tinytorch.language import CharTokenizer, TinyGPT, model
from tinytorch.language import checkpoint_checks as checks
from tinytorch.language.model import GPTConfig
from tinytorch.language.training import save_model


@settings(max_examples=40, deadline=None)
@given(vocab=st.integers(1, 9), heads=st.integers(1, 3), head_size=st.integers(1, 3), layers=st.integers(1, 3),
       ctx=st.integers(1, 9), bias=st.booleans(), positional=st.sampled_from(["learned", "sinusoidal"]),
       tie=st.booleans(), d_ff=st.one_of(st.none(), st.integers(1, 7)))
def test_expected_shapes_are_those_of_the_model(vocab, heads, head_size, layers, ctx, bias, positional, tie, d_ff):
    cfg = GPTConfig(vocab, heads * head_size, heads, layers, ctx, 0.0, bias, positional, tie, d_ff)
    built = {k: tuple(v.shape) for k, v in TinyGPT.from_config(cfg).state_dict().items()}
    assert checks.expected_state_shapes(cfg) == built


def _checkpoint(tmp_path, **overrides):
    tok = CharTokenizer().fit("hello world")
    model = TinyGPT(tok.vocab_size, d_model=8, num_heads=2, num_layers=1, max_seq_len=16, **overrides)
    path = tmp_path / "lm.safetensors"
    save_model(path, model, tok)
    return path


def _edit_config(path, **changes):
    state, meta = io.load(path)
    lang = next(v for v in meta.values() if isinstance(v, dict) and "config" in v)
    lang["config"].update(changes)
    io.save(state, path, metadata=meta)
    return lang["config"]


def test_an_edited_max_seq_len_is_refused_from_the_header_before_building(tmp_path, monkeypatch):
    path = _checkpoint(tmp_path)
    config = _edit_config(path, max_seq_len=100_000_000)  # would allocate 3.2 GB of positions

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built before the check")

    monkeypatch.setattr(model.TinyGPT, "__init__", no_build)
    with pytest.raises(ValueError) as err:
        checks.check_config_against_shapes(path, config, io.tensor_shapes(path))
    message = str(err.value)
    assert str(path) in message and "max_seq_len=100000000" in message
    assert "'wpe.weight': the config needs shape (100000000, 8), the file stores (16, 8)" in message


def test_the_honest_checkpoint_passes_and_returns_its_config(tmp_path):
    path = _checkpoint(tmp_path)
    config = _edit_config(path)
    assert checks.check_config_against_shapes(path, config, io.tensor_shapes(path)) == GPTConfig.from_dict(config)


@pytest.mark.parametrize("change, fragment", [
    ({"num_layers": 2}, "'blocks.1.ln1.weight': the config needs shape (8,), the file has no such tensor"),
    ({"d_ff": 64}, "'blocks.0.mlp.fc.weight': the config needs shape (64, 8), the file stores (32, 8)"),
    ({"bias": False}, "'blocks.0.ln1.bias' (shape (8,)): stored, but the config has no such tensor"),
    ({"vocab_size": 9}, "'wte.weight': the config needs shape (9, 8)"),
    ({"num_heads": 3}, "invalid model config"),
])
def test_other_edits_name_the_tensor_and_shapes(tmp_path, change, fragment):
    path = _checkpoint(tmp_path)
    config = _edit_config(path, **change)
    with pytest.raises(ValueError) as err:
        checks.check_config_against_shapes(path, config, io.tensor_shapes(path))
    assert str(path) in str(err.value) and fragment in str(err.value), str(err.value)


def test_sinusoidal_positions_are_bounded_since_no_tensor_stores_them(tmp_path):
    path = _checkpoint(tmp_path, positional="sinusoidal")
    config = _edit_config(path, max_seq_len=100_000_000)
    with pytest.raises(ValueError, match=r"max_seq_len=100000000 sinusoidal positions, a 6\.0 GiB table") as err:
        checks.check_config_against_shapes(path, config, io.tensor_shapes(path))
    assert str(path) in str(err.value)


def test_model_vocabulary_larger_than_the_tokenizer_is_refused_at_load(tmp_path):
    checks.check_vocab_sizes(tmp_path / "lm.safetensors", 9, 9)
    with pytest.raises(ValueError, match=r"tokenizer has 8 ids but the model 12; generation would sample ids 8\.\.11"):
        checks.check_vocab_sizes(tmp_path / "lm.safetensors", 8, 12)
    with pytest.raises(ValueError, match="no embedding"):
        checks.check_vocab_sizes(tmp_path / "lm.safetensors", 12, 8)
