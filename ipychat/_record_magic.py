"""`%chat_config --record LESSON.toml`: this kernel's own replies, appended to a lesson script.

The same lesson format the pass-through server records (`python -m ipychat serve --record`),
without a separate server: each completed `%%chat` reply becomes a `[[turn]]` with its prompt
as sent, reply, reasoning, usage and timing. `%chat_config --record off` stops. Nothing about
the endpoint (URL, key, headers) is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ._config_magic import command

if TYPE_CHECKING:
    from argparse import Namespace

    from ._magics import ChatMagics
    from ._reply import Reply

__all__ = ["record", "record_turn", "turn_of_reply"]


@command(
    "--record",
    metavar="LESSON",
    help="Append each completed reply to LESSON (a lesson script to replay with "
    "`python -m ipychat serve --script LESSON`); `--record off` stops.",
)
def record(magics: ChatMagics, args: Namespace) -> None:
    target = args.record
    if target == "off":
        recorder = getattr(magics, "lesson_recorder", None)
        magics.lesson_recorder = None
        if recorder is None:
            print("Not recording.")
        else:
            print(f"Stopped recording: {recorder.count} turns written to {recorder.path}.")
        return
    from ._lesson_write import Recorder  # only when recording starts

    try:
        recorder = Recorder(Path(target).expanduser())
    except ValueError as error:
        raise UsageError(str(error)) from None
    magics.lesson_recorder = recorder
    print(
        f"Recording each %%chat reply to {recorder.path}; replay it with "
        f"`python -m ipychat serve --script {recorder.path}`. Stop with %chat_config --record off."
    )


def record_turn(magics: ChatMagics, prompt: str, reply: Reply) -> None:
    """The magics' hook after a reply: append it when recording (complete replies only)."""
    recorder = getattr(magics, "lesson_recorder", None)
    if recorder is None or not reply.complete or not reply.text:
        return
    try:
        recorder.append(turn_of_reply(prompt, reply))
    except OSError as error:
        magics.lesson_recorder = None
        raise UsageError(
            f"Could not append to {recorder.path}: {error.strerror or error}; recording stopped."
        ) from None


def turn_of_reply(prompt: str, reply: Reply) -> dict[str, Any]:
    """A reply as a lesson turn; the completion tokens stand for the stream's chunks."""
    usage = reply.usage
    counts = None
    if usage is not None and None not in (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    ):
        counts = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
    timing = None
    first, elapsed = reply.time_to_first_token, reply.elapsed
    tokens = counts["completion_tokens"] if counts else len(reply.text.split())
    if first is not None and elapsed is not None and tokens:
        span = elapsed - first
        rate = (tokens - 1) / span if tokens > 1 and span > 0 else 0.0
        timing = {
            "time_to_first_token": round(first, 4),
            "tokens_per_second": round(rate, 3),
            "tokens": tokens,
        }
    from ._lesson_write import turn_table

    return turn_table(
        prompt,
        reply.text,
        reasoning=reply.reasoning,
        finish_reason=reply.finish_reason,
        usage=counts,
        timing=timing,
    )
