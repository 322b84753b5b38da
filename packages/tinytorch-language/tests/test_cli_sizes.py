"""`tito language` refuses sizes that cannot fit in memory before any work (issue 21 §4): one
error naming the option and the largest value of it that fits."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from tinytorch.language import TinyGPT, _memory
from tinytorch.language import cli as language_cli
from tito.main import cli

GIB = 2**30


@pytest.fixture
def one_gib(monkeypatch):
    """A machine with 1 GiB of memory, on which no text may be read: the checks come first."""
    monkeypatch.setattr(_memory, "physical_memory_bytes", lambda: GIB)

    def no_work(path):
        raise AssertionError("the text was read before the options were checked")

    monkeypatch.setattr(language_cli, "_read_text", no_work)


def _refusal(args: list[str]) -> tuple[str, int]:
    result = CliRunner().invoke(cli, ["language", *args])
    assert result.exit_code == 2, result.output  # click's usage error
    line = result.output.strip().splitlines()[-1]
    largest = re.search(r"the largest (--[\w-]+) that fits(?: with the other settings)? is ([\d,]+)$", line)
    assert largest, line
    return largest[1], int(largest[2].replace(",", ""))


RECIPE = {"vocab_size": 1, "d_model": 128, "heads": 4, "layers": 4, "context": 64, "batch_size": 12}  # --time-budget 60


@pytest.mark.parametrize("option, value, setting", [
    ("--layers", "1000000", "layers"), ("--d-model", "1e6", "d_model"), ("--context", "1e12", "context"),
    ("--batch-size", "100000000", "batch_size"),
])
def test_training_sizes_that_cannot_fit_name_the_largest_that_does(one_gib, option, value, setting):
    named, largest = _refusal(["train", "--time-budget", "60", option, value])
    assert named == option

    def needs(n):
        s = {**RECIPE, setting: n}
        return _memory.training_bytes(s["vocab_size"], s["d_model"], s["heads"], s["layers"], s["context"],
                                      s["batch_size"])

    assert needs(largest) <= GIB < needs(largest + 1)  # the largest, not merely one that fits


def test_generated_tokens_that_cannot_fit_are_refused_before_training_or_loading(one_gib, tmp_path):
    assert _refusal(["train", "--sample", "1e12"]) == ("--sample", GIB // 8)  # used to fail after training
    checkpoint = tmp_path / "any.safetensors"
    checkpoint.write_bytes(b"not read")
    assert _refusal(["generate", "--checkpoint", str(checkpoint), "--max-length", "1e20"]) == ("--max-length", GIB // 8)


def test_sizes_that_fit_pass_and_exponent_notation_must_be_whole():
    assert language_cli.WholeNumber(min=1).convert("1e3", None, None) == 1000
    result = CliRunner().invoke(cli, ["language", "train", "--layers", "2.5"])
    assert result.exit_code == 2 and "'2.5' is not a valid integer" in result.output


def test_parameter_count_is_tinygpts():
    for args in [(65, 32, 1, 16), (50257, 48, 3, 40)]:
        vocab, d, layers, context = args
        assert _memory.parameter_count(*args) == TinyGPT(vocab, d, 2, layers, context).num_parameters()
