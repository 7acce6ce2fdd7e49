"""Structured replies: schema forms, the server's JSON, each response_format fallback, repair."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Literal, Optional, TypedDict

import pydantic
import pytest

import ipychat
from ipychat import ChatClient, LocalServer, Settings
from ipychat._jsoncheck import check
from ipychat._server_structured import sample
from ipychat._structured import Schema, dialogue, drive


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


@dataclasses.dataclass
class Owner:
    name: str


@dataclasses.dataclass
class Ticket:
    category: Literal["billing", "bug", "account"]
    priority: Priority
    urgent: bool
    score: int
    owner: Owner
    tags: list[str] = dataclasses.field(default_factory=list)
    note: Optional[str] = None  # noqa: UP045 - the typing spelling must work too


class TicketDict(TypedDict, total=False):
    category: str
    count: int


class TicketModel(pydantic.BaseModel):
    category: Literal["billing", "bug", "account"]
    owner: Owner
    confidence: float = pydantic.Field(ge=0, le=1)


SCHEMAS = {
    "json": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["yes", "no"]},
            "n": {"type": "integer", "minimum": 3, "maximum": 5},
            "items": {"type": "array", "items": {"type": "number"}, "minItems": 2},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 4}]},
        },
        "required": ["label", "n"],
        "additionalProperties": False,
    },
    "fields": {"city": str, "population": int, "capital": bool, "tags": list[str]},
    "dataclass": Ticket,
    "typeddict": TicketDict,
    "pydantic": TicketModel,
}


def settings_for(server: LocalServer) -> Settings:
    settings = Settings()
    settings.set(base_url=server.base_url)
    return settings


@pytest.mark.parametrize("name", SCHEMAS)
@pytest.mark.parametrize("prompt", ["a bug in the app", "billing twice", "", "ünïcode {x}"])
def test_the_server_answers_every_schema_form_with_a_valid_value(name, prompt):
    schema = Schema.of(SCHEMAS[name])
    value = sample(schema.json, schema.json, prompt, "")
    assert check(value, schema.json) is None
    data, problem = schema.validate(json.loads(json.dumps(value)))
    assert problem is None
    if name in ("dataclass", "pydantic"):
        assert isinstance(data, SCHEMAS[name]) and isinstance(data.owner, Owner)


def test_enum_choice_follows_the_text_and_is_deterministic():
    schema = Schema.of(Ticket).json
    assert sample(schema, schema, "Classify: it crashes, a bug", "")["category"] == "bug"
    assert sample(schema, schema, "I was charged twice, billing", "")["category"] == "billing"
    assert sample(schema, schema, "x", "") == sample(schema, schema, "x", "")


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"label": "maybe", "n": 4}, "label"),
        ({"label": "yes", "n": 9}, "maximum"),
        ({"label": "yes", "n": 4.5}, "integer"),
        ({"label": "yes"}, "'n' is a required property"),
        ({"label": "yes", "n": 4, "other": 1}, "additional property"),
        ({"label": "yes", "n": 4, "items": [1]}, "fewer than 2"),
        ({"label": "yes", "n": 4, "maybe": "too long"}, "anyOf"),
        ({"label": "yes", "n": True}, "integer"),
        ([], "object"),
    ],
)
def test_the_validator_says_where_and_why(value, where):
    problem = check(value, SCHEMAS["json"])
    assert problem is not None and where in problem


def test_schema_forms_and_bad_schemas():
    assert Schema.of({"a": int}).json["properties"] == {"a": {"type": "integer"}}
    assert Schema.of(TicketDict).json["required"] == []
    required = ["category", "priority", "urgent", "score", "owner"]
    assert Schema.of(Ticket).json["required"] == required
    assert Schema.of(TicketModel).target is TicketModel
    assert Schema.of({"title": "Weird name!", "type": "object"}).wire_name == "Weird_name_"
    with pytest.raises(ipychat.ConfigError, match="schema"):
        Schema.of("Ticket")
    with pytest.raises(ipychat.ConfigError, match="cannot describe"):
        Schema.of({"when": complex})


def formats(server: LocalServer) -> list[str | None]:
    return [(r.body.get("response_format") or {}).get("type") for r in server.requests]


def test_json_schema_when_the_server_takes_it():
    with LocalServer() as srv:
        batch = ipychat.map(
            "Ticket: {item}", ["app crashes, a bug", "double billing"], schema=Ticket,
            settings=settings_for(srv), cache=False, progress=False,
        )
    assert batch.done == 2, batch.failed
    assert [r.data.category for r in batch] == ["bug", "billing"]
    assert isinstance(batch[0].data.priority, Priority)
    assert formats(srv) == ["json_schema", "json_schema"]
    frame = batch.to_pandas()
    assert {"category", "priority", "urgent", "owner", "text"} <= set(frame.columns)
    assert list(frame["category"]) == ["bug", "billing"]


def test_refused_json_schema_falls_back_to_json_object_and_remembers_it():
    with LocalServer(response_formats=("text", "json_object")) as srv:
        options = {"settings": settings_for(srv), "cache": False, "progress": False}
        batch = ipychat.map("{item}", ["bug", "account"], schema=TicketModel, concurrency=1,
                            **options)
        assert formats(srv) == ["json_schema", "json_object", "json_object"]
        system = srv.requests[-1].body["messages"][0]
        assert system["role"] == "system" and '"confidence"' in system["content"]
        srv.clear()
        again = ipychat.map("{item}", ["bug"], schema=TicketModel, **options)
    assert batch.done == 2 and again.done == 1
    assert isinstance(batch[0].data, TicketModel) and batch[0].data.category == "bug"
    assert formats(srv) == ["json_object"], "the endpoint's refusal is remembered"


def test_instructions_alone_when_no_response_format_is_taken():
    script = [{"prompt": "weather", "reply": '```json\n{"city": "Oslo", "population": 7}\n```'}]
    with LocalServer(response_formats=("text",), script=script) as srv:
        batch = ipychat.map(
            "The weather in {item}", ["Oslo"], schema={"city": str, "population": int},
            settings=settings_for(srv), cache=False, progress=False,
        )
    assert formats(srv) == ["json_schema", "json_object", None]
    assert batch[0].data == {"city": "Oslo", "population": 7}
    assert "JSON Schema" in srv.requests[-1].body["messages"][0]["content"]


def test_one_repair_request_then_the_reply_says_why():
    script = [
        {"prompt": "corrected JSON", "reply": '{"n": 4, "label": "yes"}'},
        {"prompt": "good", "reply": '{"n": 40, "label": "yes"}'},
        {"prompt": "bad", "reply": "Sorry, no JSON today."},
    ]
    with LocalServer(response_formats=("text",), script=script) as srv:
        settings = settings_for(srv)
        repaired = ipychat.map("{item}", ["good"], schema=SCHEMAS["json"], settings=settings,
                               cache=False, progress=False)
        assert repaired.done == 1 and repaired[0].data == {"n": 4, "label": "yes"}
        assert formats(srv) == ["json_schema", "json_object", None, None]
        assert repaired.attempts == [4], "every request sent counts, refusals too"
        repair = srv.requests[-1].body["messages"]
        assert [m["role"] for m in repair][-3:] == ["user", "assistant", "user"]
        assert "maximum" in repair[-1]["content"], "the repair request says what was wrong"
    script[0]["reply"] = "still not JSON"
    with LocalServer(response_formats=("text",), script=script) as srv:
        failed = ipychat.map("{item}", ["bad"], schema=SCHEMAS["json"],
                             settings=settings_for(srv), cache=False, progress=False)
        assert formats(srv).count(None) == 2, "one repair, no more"
    assert failed.done == 0 and "does not match the schema" in failed.failed[0]
    assert failed[0].text == "still not JSON" and failed[0].data is None


def test_a_single_request_with_a_schema_through_the_sync_client():
    with LocalServer() as srv, ChatClient(settings_for(srv)) as client:
        messages = [{"role": "user", "content": "a bug"}]
        talk = dialogue(messages, Schema.of(Ticket), client.settings.resolve().url, {})
        reply = drive(talk, lambda m, extra: client.send(m, extra_body=extra))
    assert isinstance(reply.data, Ticket) and reply.data.category == "bug"
    assert reply.error is None


def test_the_cache_gives_back_the_users_type(tmp_path):
    with LocalServer() as srv:
        options = {"settings": settings_for(srv), "cache": tmp_path / "c", "progress": False}
        ipychat.map("{item}", ["bug"], schema=Ticket, **options)
        batch = ipychat.map("{item}", ["bug"], schema=Ticket, **options)
        assert len(srv.requests) == 1
    assert batch.from_cache == 1 and isinstance(batch[0].data, Ticket)


def test_the_command_line_server_can_refuse_json_schema():
    import subprocess
    import sys

    import httpx

    command = [sys.executable, "-m", "ipychat", "serve", "--port", "0", "--quiet"]
    command += ["--response-formats", "text,json_object"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().split(" on ")[1].split()[0]
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            schema = {"name": "r", "schema": {"type": "object"}}
            refused = httpx.post(
                base_url + "/chat/completions",
                json={**body, "response_format": {"type": "json_schema", "json_schema": schema}},
            )
            taken = httpx.post(
                base_url + "/chat/completions",
                json={**body, "response_format": {"type": "json_object"}},
            )
        finally:
            process.terminate()
    assert refused.status_code == 400 and "json_schema" in refused.json()["message"]
    assert taken.status_code == 200
    assert json.loads(taken.json()["choices"][0]["message"]["content"]) == {"reply": "Echo: hi"}
