"""check_outputs: an output that is an input, by any name, is refused; distinct files pass."""

from __future__ import annotations

import os

import pytest

from tinytorch.core.paths import OutputIsInputError, check_outputs


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("To be, or not to be")
    return path


def test_the_same_path_a_symlink_a_hard_link_and_dotdot_are_the_input(tmp_path, text):
    (tmp_path / "link.txt").symlink_to(text)
    os.link(text, tmp_path / "hard.txt")
    cases = {
        text: "(--text)",
        tmp_path / "link.txt": f"(--text: {text}, through a symlink)",
        tmp_path / "hard.txt": f"(--text: {text}, through a hard link)",
        tmp_path / "missing" / ".." / "text.txt": f"(--text: {text})",  # once the writer has made missing/
    }
    for out, how in cases.items():
        with pytest.raises(OutputIsInputError) as err:
            check_outputs({"--out": out}, {"--text": text})
        assert str(err.value) == (f"--out {out}: it is an input of this command {how}; writing it would destroy "
                                  f"that file: give another --out")


def test_a_file_inside_an_input_directory_is_an_input(tmp_path):
    (tmp_path / "gpt2" / "sub").mkdir(parents=True)
    (tmp_path / "gpt2" / "sub" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(OutputIsInputError, match=r"an input of this command \(--init-from\)"):
        check_outputs({"--out": tmp_path / "gpt2" / "sub" / "model.safetensors"}, {"--init-from": tmp_path / "gpt2"})
    check_outputs({"--out": tmp_path / "gpt2" / "new.safetensors"}, {"--init-from": tmp_path / "gpt2"})


def test_other_files_new_files_and_absent_options_pass(tmp_path, text):
    other = tmp_path / "other.txt"
    other.write_text("To be, or not to be")  # same content, another file
    check_outputs({"--out": other}, {"--text": text})
    check_outputs({"--out": tmp_path / "new.safetensors", "--csv": None}, {"--text": text, "--load": None})
    check_outputs({"--out": text}, {"--text": None})


def test_two_outputs_that_are_one_file_are_refused(tmp_path):
    with pytest.raises(OutputIsInputError, match=r"--trace .*t\.json: it is the same file as --csv .*t\.json; one "
                                                 r"would overwrite the other: give another --trace"):
        check_outputs({"--csv": tmp_path / "t.json", "--trace": tmp_path / "." / "t.json"})
    check_outputs({"--csv": tmp_path / "t.csv", "--trace": tmp_path / "t.json"})


def test_continuation_path_takes_the_next_free_number_and_never_an_existing_name(tmp_path):
    from tinytorch.core.paths import continuation_path

    run = tmp_path / "run.safetensors"
    assert continuation_path(run) == tmp_path / "run-2.safetensors"
    (tmp_path / "run-2.safetensors").write_bytes(b"")
    (tmp_path / "run-3.safetensors").symlink_to(tmp_path / "missing")  # a dangling link is a name too
    assert continuation_path(run) == tmp_path / "run-4.safetensors"
    assert continuation_path(tmp_path / "run-9.safetensors") == tmp_path / "run-10.safetensors"
    assert continuation_path(tmp_path / "a-b.safetensors") == tmp_path / "a-b-2.safetensors"
