"""The README's quick start as a newcomer copies it, and as CI (.ci/run) reads it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
CI = README.parent / ".ci" / "run"


def quick_start_block() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_quick_start_makes_a_virtualenv_before_any_pip_install() -> None:
    # Debian's and Ubuntu's system Python refuse `pip install` outside a virtualenv.
    lines = quick_start_block()
    first_pip = next(n for n, line in enumerate(lines) if line.startswith("pip install"))
    assert any(re.match(r"python3 -m venv (\S+) && \. \1/bin/activate", line) for line in lines[:first_pip]), lines
    assert "externally-managed-environment" in README.read_text(encoding="utf-8")


def test_the_quick_start_says_siyu_run_blocks_and_the_tests_need_a_second_terminal() -> None:
    run_line = next(line for line in quick_start_block() if "siyu run" in line)
    test_line = next(line for line in quick_start_block() if "pytest" in line)
    assert "Ctrl-C" in run_line and "second terminal" in test_line


def test_ci_still_finds_the_test_command() -> None:
    # .ci/run's own extraction, verbatim: the line marked "tests", its comment cut off.
    pattern = re.search(r"grep -m1 -E '([^']+)' README.md \| sed -E '([^']+)'", CI.read_text(encoding="utf-8"))
    assert pattern is not None
    found = subprocess.run(f"grep -m1 -E '{pattern[1]}' README.md | sed -E '{pattern[2]}'", shell=True,
                           cwd=README.parent, capture_output=True, text=True, check=True).stdout.strip()
    assert found == "pip install -e '.[test]' && python -m pytest"
