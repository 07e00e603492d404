"""The desk's screen and keyboard: lines of output, a progress line, the PIN, yes/no and a choice.

Owns how the terminal talks to the doctor. The PIN is read without echo (``getpass``) and handed
straight to the caller: it is never printed, logged or stored. ``--yes`` answers every question with
its safe default so tests and scripted desks can run without a keyboard. Output goes to the given
stream (not ``print``), so tests read exactly what the doctor sees.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Sequence
from typing import TextIO

MAX_ANSWER_ATTEMPTS = 5  # unrecognised answers to one question before its default is taken


class Console:
    """The screen and keyboard of one terminal session."""

    def __init__(
        self,
        *,
        stdin: TextIO,
        stdout: TextIO,
        read_pin: Callable[[str], str] = getpass.getpass,
        pin_can_be_retried: bool = True,
        assume_yes: bool = False,
    ) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._read_pin = read_pin
        self.pin_can_be_retried = pin_can_be_retried  # False when the PIN comes from a fixed source
        self.assume_yes = assume_yes
        self._progress_shown = False
        self._tty = stdout.isatty()

    def say(self, text: str = "") -> None:
        self.end_progress()
        self._stdout.write(text + "\n")
        self._stdout.flush()

    def progress(self, text: str) -> None:
        """One line rewritten in place on a screen; written once to a file or pipe."""
        if self._tty:
            self._stdout.write("\r\x1b[K" + text)
            self._stdout.flush()
        elif not self._progress_shown:
            self._stdout.write(text + "\n")
            self._stdout.flush()
        self._progress_shown = True

    def end_progress(self) -> None:
        if self._progress_shown and self._tty:
            self._stdout.write("\n")
            self._stdout.flush()
        self._progress_shown = False

    def pin(self, prompt: str) -> str:
        self.end_progress()
        return self._read_pin(prompt)

    def confirm(self, question: str) -> bool:
        """Yes or no; ``--yes`` answers yes, the end of input answers no."""
        answer = self.choose(question, (("y", "是 yes"), ("n", "否 no")), default="y" if self.assume_yes else "n")
        return answer == "y"

    def choose(self, question: str, options: Sequence[tuple[str, str]], *, default: str) -> str:
        """One of ``options`` (key, label). ``--yes`` and the end of input take ``default``."""
        keys = [key for key, _label in options]
        if default not in keys:
            raise ValueError(f"default {default!r} is not one of the options {keys}")
        menu = " / ".join(f"[{key}] {label}" for key, label in options)
        if self.assume_yes:
            self.say(f"{question} {menu}: {default} (--yes)")
            return default
        for _ in range(MAX_ANSWER_ATTEMPTS):
            self.end_progress()
            self._stdout.write(f"{question} {menu}: ")
            self._stdout.flush()
            line = self._stdin.readline()
            if not line:  # end of input: nobody is there to answer
                self.say(f"(no answer: {default})")
                return default
            answer = line.strip().lower()
            if answer in keys:
                return answer
            self.say(f"请输入 {' / '.join(keys)} (please answer {' / '.join(keys)})")
        self.say(f"(no valid answer: {default})")
        return default


def pin_from_environment(variable: str) -> Callable[[str], str]:
    """For tests only: the PIN from an environment variable (other processes of the user can read it)."""

    def read(_prompt: str) -> str:
        value = os.environ.get(variable)
        if value is None:
            raise PinSourceError(f"--pin-from-env: the environment variable {variable} is not set")
        return value

    return read


class PinSourceError(Exception):
    """The configured PIN source has no PIN (never carries the PIN itself)."""
