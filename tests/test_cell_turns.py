"""Turns belong to cells: a re-run replaces its exchange in place, a deleted cell's goes.

These drive `Conversation` directly (the kernel tests drive the same through execute
requests): `cell` names one run of one cell, as the `pre_run_cell` hook makes it.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ipychat._cells import CellRun, CellTracker
from ipychat._conversation import Conversation, SessionRegistry
from ipychat._reply import Reply

from .test_conversation import Server, client_for, streamed


class Notebook:
    """Runs cells against one conversation; each `run` is a fresh execution of a cell."""

    def __init__(self, conv: Conversation | None = None) -> None:
        self.conv = conv if conv is not None else Conversation()
        self.runs = 0
        self.sent: list[list[dict[str, str]]] = []

    def run(self, cell_id: str | None, *prompts: str) -> None:
        self.runs += 1
        cell = CellRun(cell_id, self.runs, self.runs) if cell_id else None
        for prompt in prompts:
            self.sent.append(self.conv.build_messages(prompt, cell=cell))
            self.conv.record(prompt, Reply(text=f"re: {prompt}"), cell=cell)

    def users(self) -> list[str]:
        return [m.content for m in self.conv.messages if m.role == "user"]

    def last_history(self) -> list[str]:
        """The user turns of the last request, its own prompt last."""
        return [m["content"] for m in self.sent[-1] if m["role"] == "user"]


def test_a_rerun_sends_the_history_before_it_and_replaces_in_place() -> None:
    nb = Notebook()
    nb.run("A", "a1")
    nb.run("B", "b1")
    nb.run("C", "c1")
    nb.run("B", "b2")  # B edited and re-run
    assert nb.last_history() == ["a1", "b2"], "not its own old turn, not the later ones"
    assert nb.users() == ["a1", "b2", "c1"], "the new exchange takes the old one's place"
    assert [m.content for m in nb.conv.messages[2:4]] == ["b2", "re: b2"]


def test_running_the_notebook_twice_leaves_the_same_history_as_once() -> None:
    nb = Notebook()
    for _ in range(2):
        for cell in ("A", "B", "C"):
            nb.run(cell, f"{cell} prompt")
    assert nb.users() == ["A prompt", "B prompt", "C prompt"]
    assert nb.last_history() == ["A prompt", "B prompt", "C prompt"]
    assert len(nb.conv) == 3


def test_several_chats_in_one_cell_keep_all_in_order_and_a_rerun_replaces_them() -> None:
    nb = Notebook()
    nb.run("A", "a")
    nb.run("L", "one", "two", "three")  # a loop or several %chat lines in one cell
    nb.run("Z", "z")
    assert nb.users() == ["a", "one", "two", "three", "z"]
    nb.run("L", "uno", "dos")  # re-run: fewer lines now
    assert nb.sent[-2:] and [m["content"] for m in nb.sent[-1] if m["role"] == "user"] == [
        "a",
        "uno",
        "dos",
    ], "the second line sees the first line of the same run"
    assert nb.users() == ["a", "uno", "dos", "z"], "the dropped third line is gone"


def test_without_a_cell_exchanges_append_as_before() -> None:
    nb = Notebook()
    nb.run(None, "x")
    nb.run(None, "x")
    nb.run("A", "a")
    nb.run(None, "y")
    assert nb.users() == ["x", "x", "a", "y"]
    nb.run("A", "a again")
    assert nb.users() == ["x", "x", "a again", "y"]
    assert nb.last_history() == ["x", "x", "a again"]


def test_a_failed_rerun_keeps_the_old_exchange() -> None:
    server = Server(streamed("first"), streamed("", finish=None))
    client = client_for(server)
    conv = Conversation()
    conv.send("q", client=client, cell=CellRun("A", 1, 1))
    with pytest.raises(Exception):  # noqa: B017 - a stream that breaks before any text
        conv.send("q again", client=client, cell=CellRun("A", 2, 2))
    assert [m.content for m in conv.messages] == ["q", "first"], "nothing recorded, nothing lost"


def test_send_for_a_rerun_reaches_the_server_without_the_old_turn() -> None:
    server = Server(streamed("1"), streamed("2"), streamed("3"))
    client = client_for(server)
    conv = Conversation(system="S")
    conv.send("first", client=client, cell=CellRun("A", 1, 1))
    conv.send("second", client=client, cell=CellRun("B", 2, 2))
    conv.send("first, edited", client=client, cell=CellRun("A", 3, 3))
    assert server.sent[2] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "first, edited"},
    ]
    assert [m.content for m in conv.messages] == ["first, edited", "3", "second", "2"]
    assert conv.messages[0].execution_count == 3 and conv.messages[1].cell_id == "A"


def test_history_limit_counts_back_from_the_rerun_cell() -> None:
    nb = Notebook()
    for cell in "ABCD":
        nb.run(cell, cell)
    messages = nb.conv.build_messages("c2", history_limit=1, cell=CellRun("C", 99))
    assert [m["content"] for m in messages] == ["B", "re: B", "c2"]


def test_deleted_cells_are_dropped_from_every_session() -> None:
    registry = SessionRegistry()
    for name in ("default", "other"):
        nb = Notebook(registry.get(name))
        nb.run("A", "a")
        nb.run("B", "b")
        nb.run("C", "c")
    assert registry.drop_cells(["B", "nope"]) == 2
    assert [m.content for m in registry.get("other").messages if m.role == "user"] == ["a", "c"]
    assert registry.drop_cells(["B"]) == 0


def test_records_and_exports_carry_the_cell() -> None:
    nb = Notebook()
    nb.run("A", "a")
    nb.run(None, "free")
    rows = nb.conv.to_records()
    assert [(r["role"], r["cell_id"], r["execution_count"]) for r in rows] == [
        ("user", "A", 1),
        ("assistant", "A", 1),
        ("user", None, None),
        ("assistant", None, None),
    ]
    loaded = Conversation.from_json(nb.conv.to_json())
    assert [(m.cell_id, m.execution_count) for m in loaded.messages] == [
        ("A", 1),
        ("A", 1),
        (None, None),
        (None, None),
    ]
    data = json.loads(nb.conv.to_json())
    assert "cell_id" not in data["messages"][2], "no cell, no key: older exports look the same"
    # A loaded export's cells are replaced by their next run, like a restore's.
    nb2 = Notebook(loaded)
    nb2.runs = 10
    nb2.run("A", "a2")
    assert nb2.users() == ["a2", "free"]


# -- the pre_run_cell hook -------------------------------------------------------------------


def info(cell_id: object = None, meta: object = None, store_history: bool = True) -> object:
    return SimpleNamespace(cell_id=cell_id, cell_meta=meta, store_history=store_history)


def test_the_tracker_follows_cells_and_drops_deleted_ones() -> None:
    registry = SessionRegistry()
    nb = Notebook(registry.get())
    nb.run("A", "a")
    nb.run("B", "b")
    shell = SimpleNamespace(execution_count=8, kernel=None)
    tracker = CellTracker(registry, shell)
    tracker.pre_run_cell(info("C", {"cellId": "C", "deletedCells": ["A", 7, ""]}))
    assert tracker.current is not None and tracker.current.id == "C"
    assert tracker.current.execution_count == 7, "IPython counted the cell before the event"
    assert nb.users() == ["b"] and tracker.dropped == 1
    first = tracker.current.run
    tracker.post_run_cell(None)
    assert tracker.current is None, "callbacks between cells belong to no cell"
    tracker.pre_run_cell(info("C", {}))
    assert tracker.current.run != first, "a re-run is a new run"
    for odd in (None, "", 5):
        tracker.pre_run_cell(info(odd, {"deletedCells": "B"}))
        assert tracker.current is None
    assert nb.users() == ["b"], "deletedCells that is not a list is ignored"


def test_the_tracker_reads_deleted_cells_from_the_kernel_without_cell_meta() -> None:
    """IPython before 9 passes no `cell_meta`: the request comes from ipykernel instead."""
    registry = SessionRegistry()
    Notebook(registry.get()).run("A", "a")
    parent = {"metadata": {"cellId": "B", "deletedCells": ["A"]}}
    kernel = SimpleNamespace(get_parent=lambda channel=None: parent)
    tracker = CellTracker(registry, SimpleNamespace(execution_count=2, kernel=kernel))
    tracker.pre_run_cell(SimpleNamespace(cell_id="B", store_history=True))
    assert len(registry.get()) == 0 and tracker.current.execution_count == 1


def test_a_cell_that_moves_to_another_session_leaves_the_old_one() -> None:
    registry = SessionRegistry()
    tracker = CellTracker(registry, SimpleNamespace(execution_count=1, kernel=None))

    def run_cell(session: str, prompt: str | None, *, fails: bool = False) -> None:
        tracker.pre_run_cell(info("C"))
        if prompt is not None:
            tracker.sending(session)
            if not fails:
                registry.get(session).record(prompt, Reply(text="ok"), cell=tracker.current)
        tracker.post_run_cell(None)

    Notebook(registry.get("A")).run("X", "x")
    run_cell("A", "in A")
    run_cell("A", None)  # the cell ran without sending (an error before %chat, say)
    assert [m.content for m in registry.get("A").messages[::2]] == ["x", "in A"]
    run_cell("B", "in B", fails=True)  # nothing recorded anywhere: nothing changes
    assert [m.content for m in registry.get("A").messages[::2]] == ["x", "in A"]
    run_cell("B", "in B")  # `-s A` edited to `-s B`
    assert [m.content for m in registry.get("A").messages[::2]] == ["x"]
    assert [m.content for m in registry.get("B").messages[::2]] == ["in B"]
    run_cell("B", "in B again")
    assert [m.content for m in registry.get("B").messages[::2]] == ["in B again"]
