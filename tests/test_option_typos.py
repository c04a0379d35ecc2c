"""A mistyped option is answered with the options it was short for, or one edit away, compared
without the dashes (two dashes are no shared letters: --ep is no typo of --sep)."""

from __future__ import annotations

import pytest

from neuralab.cli import main


@pytest.mark.parametrize("words, said", [
    (["forecast", "--ep", "5"], "did you mean --epochs?"),
    (["forecast", "--ta", "x"], "did you mean --target or --target-transform?"),
    (["train", "--opt", "sgd"], "did you mean --optimizer?"),
    (["train", "--re"], "did you mean --recipe or --resume or --resume-if-interrupted?"),
    (["train", "-lr", "1"], "did you mean --lr?"),
    (["train", "--trust_code"], "did you mean --trust-code?"),
    (["train", "--overwirte"], "did you mean --overwrite?"),
    (["train", "--epoch=1"], "did you mean --epochs?"),
    (["train", "--ml", "1"], "see `neuralab train --help`"),
    (["train", "--l2", "1"], "see `neuralab train --help`"),
])
def test_a_mistyped_option_gets_the_options_it_was_short_for_or_none(words, said, capsys):
    with pytest.raises(SystemExit) as e:
        main(words)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.endswith(f"no such option of neuralab {words[0]}; {said}\n"), err

