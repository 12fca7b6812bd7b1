"""`bendi run`: the interactive chat driven through a real terminal (pexpect), and one-shot use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from server_process import terminal_signals

BENDI = str(Path(sys.executable).parent / "bendi")


@pytest.fixture()
def env(bendi_home: Path) -> dict[str, str]:
    return dict(os.environ, BENDI_HOME=str(bendi_home), BENDI_THREADS="2", BENDI_CONTEXT_TOKENS="1024")


def test_interactive_multi_turn_ctrl_c_and_bye(env: dict[str, str]) -> None:
    chat = pexpect.spawn(BENDI, ["run", "smollm2:135m", "--max-tokens", "400", "--temperature", "0.8"],
                         env=env, encoding="utf-8", timeout=60, dimensions=(40, 120), preexec_fn=terminal_signals)  # fmt: skip
    try:
        chat.expect("/bye to leave")
        chat.expect_exact(">>> ")
        chat.sendline("/think off")
        chat.expect("Reasoning will be hidden")
        chat.expect_exact(">>> ")
        chat.sendline("Tell me a long story about a coal miner.")
        chat.expect_exact("coal miner.\r\n")  # our own line, echoed by the terminal
        chat.expect(r"\w\w+", timeout=30)  # the answer starts streaming
        chat.sendintr()  # Ctrl-C stops this answer, not the chat
        chat.expect_exact("[stopped]")
        chat.expect_exact(">>> ")
        chat.sendline("/set system You answer in one word.")
        chat.expect("System prompt set")
        chat.sendline("Hi!")
        chat.expect_exact(">>> ", timeout=60)  # answered and back at the prompt: multi-turn works
        chat.sendline("/bye")
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0


def test_ctrl_c_at_the_prompt_does_not_leave_and_ctrl_d_does(env: dict[str, str]) -> None:
    chat = pexpect.spawn(BENDI, ["run"], env=env, encoding="utf-8", timeout=60, preexec_fn=terminal_signals)
    try:
        chat.expect_exact(">>> ")
        # The prompt is drawn before readline waits for a key; a Ctrl-C in between is only seen at
        # the next key press (a real user cannot be that fast, a loaded test machine can): press it
        # again until the hint shows, as a user would.
        for _ in range(6):
            time.sleep(0.5)
            chat.sendintr()
            if chat.expect(["Use /bye or Ctrl-D to leave", pexpect.TIMEOUT], timeout=10) == 0:
                break
        else:
            raise AssertionError(f"Ctrl-C at the prompt never answered: {chat.before!r}")
        chat.expect_exact(">>> ")
        chat.sendline("/help")
        chat.expect_exact("/think on|off")
        chat.expect_exact(">>> ")
        chat.sendline("/think on")
        chat.expect("Reasoning will be shown")
        chat.sendline("/clear")
        chat.expect("Cleared the conversation")
        chat.expect_exact(">>> ")
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)
    assert chat.exitstatus == 0


def test_one_shot_prompt_prints_only_the_answer(env: dict[str, str]) -> None:
    result = subprocess.run([BENDI, "run", "smollm2:135m", "--prompt", "Say hi.", "--max-tokens", "12",
                             "--temperature", "0"], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert ">>>" not in result.stdout


def test_one_shot_from_stdin_and_a_gguf_path(env: dict[str, str], smollm2_path: Path) -> None:
    result = subprocess.run([BENDI, "run", str(smollm2_path), "--max-tokens", "8", "--temperature", "0"],
                            input="What is 2+2?", env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_unknown_model_is_a_clear_error(env: dict[str, str]) -> None:
    result = subprocess.run([BENDI, "run", "deepseek-r1:999b", "--prompt", "hi"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert "not installed" in result.stderr and "bendi pull" in result.stderr
    assert "Traceback" not in result.stderr
