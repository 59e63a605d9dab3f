"""The A2A v1.0 specification's MUSTs, as raw JSON-RPC, for v1.0 method names and v0.3 aliases.

ListTasks has no v0.3 JSON-RPC method (v0.3 lists tasks over gRPC/REST only),
so its tests are v1.0 alone; every other item runs in both families.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.a2a_rpc import A2A, FAMILIES, V03, V10, Family, data, open_a2a, text

WORKING, COMPLETED = "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"
FAILED, CANCELED = "TASK_STATE_FAILED", "TASK_STATE_CANCELED"


@pytest.fixture
async def a2a() -> AsyncIterator[A2A]:
    async for endpoint in open_a2a():
        yield endpoint


def ids(family: Family) -> str:
    return f"v{family.name}"


# -- 1. a message to a task in a terminal state: UnsupportedOperationError ----------------


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_a_message_to_a_finished_task_is_unsupported(a2a: A2A, family: Family) -> None:
    finished = {
        COMPLETED: await a2a.send(text("hello")),
        FAILED: await a2a.send(text("fail at once")),
        CANCELED: await a2a.canceled(),
    }
    for state, task in finished.items():
        assert task["status"]["state"] == state
        for method in (family.send, family.stream):  # a streaming send fails before any event
            follow_up = family.message(text("more"), task_id=task["id"])
            error = await a2a.error(method, {"message": follow_up})
            assert error["code"] == -32004, (method, error)
            assert "terminal state" in error["message"]
            details = family.details(error)
            assert details == {"taskId": task["id"], "taskState": family.state(state)}
    # the task is unchanged, and its context still takes new tasks
    done = finished[COMPLETED]
    again = await a2a.result(family.get, {"id": done["id"]})
    assert again["status"]["state"] == family.state(COMPLETED)
    fresh = family.message(text("again"), context_id=done["contextId"])
    new = family.task(await a2a.result(family.send, {"message": fresh}))
    assert new["id"] != done["id"] and new["status"]["state"] == family.state(COMPLETED)


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_a_message_to_a_working_task_is_refused_distinguishably(
    a2a: A2A, family: Family
) -> None:
    task = await a2a.working()
    for method in (family.send, family.stream):
        follow_up = family.message(text("more"), task_id=task["id"])
        error = await a2a.error(method, {"message": follow_up})
        assert error["code"] == -32004 and "still working" in error["message"]
        assert family.details(error) == {"taskId": task["id"], "taskState": family.state(WORKING)}
    canceled = await a2a.result(family.cancel, {"id": task["id"]})
    assert canceled["status"]["state"] == family.state(CANCELED)


# -- 2. ListTasks: newest status first -----------------------------------------------------


async def test_list_tasks_newest_status_first(a2a: A2A) -> None:
    slow = await a2a.working(context_id="c1")  # started at t=1000, canceled at t=1030
    a2a.clock.advance(10)
    first = await a2a.send(text("one"), context_id="c2")  # t=1010
    a2a.clock.advance(10)
    second = await a2a.send(text("two"), context_id="c2")  # t=1020
    a2a.clock.advance(10)
    await a2a.result("CancelTask", {"id": slow["id"]})

    listed = await a2a.result("ListTasks", {})
    assert [t["id"] for t in listed["tasks"]] == [slow["id"], second["id"], first["id"]]
    times = [t["status"]["timestamp"] for t in listed["tasks"]]
    assert times == ["1970-01-01T00:17:10Z", "1970-01-01T00:17:00Z", "1970-01-01T00:16:50Z"]
    assert [t["status"]["state"] for t in listed["tasks"]] == [CANCELED, COMPLETED, COMPLETED]
    in_context = await a2a.result("ListTasks", {"contextId": "c2"})
    assert [t["id"] for t in in_context["tasks"]] == [second["id"], first["id"]]
    # statusTimestampAfter is inclusive ("greater than or equal to")
    recent = await a2a.result("ListTasks", {"statusTimestampAfter": times[1]})
    assert [t["id"] for t in recent["tasks"]] == [slow["id"], second["id"]]
    canceled = await a2a.result("ListTasks", {"status": CANCELED})
    assert [t["id"] for t in canceled["tasks"]] == [slow["id"]]


async def test_list_tasks_has_no_v03_method(a2a: A2A) -> None:
    assert (await a2a.error("tasks/list", {}))["code"] == -32601


# -- 3. ListTasks paging ----------------------------------------------------------------------


async def test_list_tasks_pages_follow_cursors_to_an_empty_token(a2a: A2A) -> None:
    made = []
    for n in range(5):  # two of them at the same instant: the task id breaks the tie
        made.append(await a2a.send(text(f"task {n}")))
        if n != 2:
            a2a.clock.advance(1)
    expected = [t["id"] for t in (await a2a.result("ListTasks", {}))["tasks"]]
    assert sorted(expected) == sorted(t["id"] for t in made)

    seen: list[str] = []
    params: dict[str, Any] = {"pageSize": 2}
    sizes = []
    while True:
        page = await a2a.result("ListTasks", params)
        assert page["pageSize"] == 2 and page["totalSize"] == 5
        seen += [t["id"] for t in page["tasks"]]
        sizes.append(len(page["tasks"]))
        if not page["nextPageToken"]:
            assert page["nextPageToken"] == ""  # present, and empty on the last page
            break
        params["pageToken"] = page["nextPageToken"]
    assert sizes == [2, 2, 1] and seen == expected

    # a task that appears between pages does not shift the pages after the cursor
    page_one = await a2a.result("ListTasks", {"pageSize": 2})
    a2a.clock.advance(1)
    newer = await a2a.send(text("newer"))
    rest = await a2a.result("ListTasks", {"pageSize": 100, "pageToken": page_one["nextPageToken"]})
    assert [t["id"] for t in rest["tasks"]] == expected[2:]
    assert rest["nextPageToken"] == "" and rest["totalSize"] == 6
    assert newer["id"] not in [t["id"] for t in rest["tasks"]]


async def test_list_tasks_page_size_defaults_to_50_and_allows_1_to_100(a2a: A2A) -> None:
    await a2a.send(text("hello"))
    default = await a2a.result("ListTasks", {})
    assert default["pageSize"] == 50 and default["nextPageToken"] == ""
    for size in (1, 100):
        assert (await a2a.result("ListTasks", {"pageSize": size}))["pageSize"] == size


@pytest.mark.parametrize("size", [0, -1, 101, 2**31 - 1])
async def test_list_tasks_page_size_out_of_range_is_invalid_params(a2a: A2A, size: int) -> None:
    await a2a.send(text("hello"))
    error = await a2a.error("ListTasks", {"pageSize": size})
    assert error["code"] == -32602 and "pageSize" in error["message"]


@pytest.mark.parametrize(
    "token",
    [
        "-1",
        "1",
        "50",
        "not a token",
        "eyJ0cyI6bnVsbCwiaWQiOiJ4In0",  # the SDK's cursor shape, with no timestamp
        "eyJ4IjoxfQ",  # base64 of {"x":1}
    ],
)
async def test_list_tasks_page_token_not_issued_here_is_invalid_params(
    a2a: A2A, token: str
) -> None:
    for n in range(3):
        await a2a.send(text(f"task {n}"))
    error = await a2a.error("ListTasks", {"pageSize": 1, "pageToken": token})
    assert error["code"] == -32602 and "pageToken" in error["message"]


# -- 4. unknown enum values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "where"),
    [
        ("ListTasks", {"status": "INVALID_STATUS"}, "params.status"),
        ("ListTasks", {"status": 99}, "params.status"),
        ("ListTasks", {"status": True}, "params.status"),
        ("SendMessage", {"message": {"messageId": "m", "role": "ROLE_ROBOT",
                                     "parts": [{"text": "hi"}]}}, "params.message.role"),
        ("SendStreamingMessage", {"message": {"messageId": "m", "role": 9,
                                              "parts": [{"text": "hi"}]}}, "params.message.role"),
        ("message/send", {"message": {"kind": "message", "messageId": "m", "role": "robot",
                                      "parts": [{"kind": "text", "text": "hi"}]}},
         "params.message.role"),
        ("message/stream", {"message": {"kind": "message", "messageId": "m", "role": "user",
                                        "parts": [{"kind": "text", "text": "hi"}]},
                            "configuration": {"blocking": "maybe"}}, "params.configuration"),
    ],
)  # fmt: skip
async def test_unknown_enum_values_are_invalid_params(
    a2a: A2A, method: str, params: dict[str, Any], where: str
) -> None:
    error = await a2a.error(method, params)
    assert error["code"] == -32602 and where in error["message"]
    assert "INVALID_STATUS" not in error["message"] and "ROBOT" not in error["message"]
    assert (await a2a.result("ListTasks", {}))["tasks"] == []  # nothing was started


async def test_known_enum_values_by_name_or_number(a2a: A2A) -> None:
    task = await a2a.send(text("hello"))
    for status in (COMPLETED, 3):
        listed = await a2a.result("ListTasks", {"status": status})
        assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    assert (await a2a.result("ListTasks", {"status": WORKING}))["tasks"] == []


# -- 5. GetExtendedAgentCard without the capability: UnsupportedOperationError -------------


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_extended_agent_card_is_unsupported(a2a: A2A, family: Family) -> None:
    card = (await a2a.http.get("/.well-known/agent-card.json")).json()
    assert card["capabilities"].get("extendedAgentCard", False) is False
    error = await a2a.error(family.extended_card, {})
    assert error["code"] == -32004 and "extendedAgentCard" in error["message"]


# -- 6. message ids are their creator's -----------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_the_clients_message_id_is_kept(a2a: A2A, family: Family) -> None:
    message = family.message(text("My name is Ida"), message_id="client-chosen-id-1")
    task = family.task(await a2a.result(family.send, {"message": message}))
    assert task["history"][0]["messageId"] == "client-chosen-id-1"
    for _ in range(2):  # every later read agrees, from the store
        again = await a2a.result(family.get, {"id": task["id"]})
        assert [m["messageId"] for m in again["history"]] == [
            m["messageId"] for m in task["history"]
        ]
        assert again["history"][0]["messageId"] == "client-chosen-id-1"
    agent_id = task["history"][1]["messageId"]
    assert agent_id.startswith(task["id"])  # the agent's: named by the server, stable
    if not family.v03:
        listed = await a2a.result("ListTasks", {"contextId": task["contextId"]})
        assert listed["tasks"][0]["history"][0]["messageId"] == "client-chosen-id-1"


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_message_id_of_a_task_returned_at_once(a2a: A2A, family: Family) -> None:
    message = family.message(text("slow answer"), message_id="client-chosen-id-2")
    config = {"blocking": False} if family.v03 else {"returnImmediately": True}
    params = {"message": message, "configuration": config}
    early = family.task(await a2a.result(family.send, params))
    assert early["status"]["state"] == family.state(WORKING)
    assert early["history"][0]["messageId"] == "client-chosen-id-2"
    await a2a.thinking(early["id"])  # the user message is stored: reads now come from the store
    canceled = await a2a.result(family.cancel, {"id": early["id"]})
    assert canceled["history"][0]["messageId"] == "client-chosen-id-2"
    again = await a2a.result(family.get, {"id": early["id"]})
    assert again["history"][0]["messageId"] == "client-chosen-id-2"


# -- 7. numbers in data parts reach the agent as the client wrote them ---------------------


@pytest.mark.parametrize("family", FAMILIES, ids=ids)
async def test_integers_in_data_parts_stay_integers(a2a: A2A, family: Family) -> None:
    payload = {"n": 123, "big": 2**60 + 1, "f": 1.5, "neg": -7, "list": [1, 2.0, {"k": 0}]}
    sent = '{"n": 123, "big": 1152921504606846977, "f": 1.5, "neg": -7, "list": [1, 2.0, {"k": 0}]}'
    message = family.message(text("order"), data(payload))
    task = family.task(await a2a.result(family.send, {"message": message}))
    assert task["artifacts"][0]["parts"][0]["text"] == f"You said: order\n{sent}"
    stored = await a2a.http.get(
        f"/v1/sessions/{task['contextId']}/messages", headers={"X-User-Id": "alice"}
    )
    assert stored.json()["messages"][0]["content"] == f"order\n{sent}"  # what the model read


async def test_v10_data_part_may_be_any_json_value(a2a: A2A) -> None:
    task = await a2a.send(data([1, 2, 3]))
    assert task["artifacts"][0]["parts"][0]["text"] == "You said: [1, 2, 3]"
    task = await a2a.send(data(42))
    assert task["artifacts"][0]["parts"][0]["text"] == "You said: 42"


def test_families_spell_states_as_the_wire_does() -> None:
    assert V10.state("TASK_STATE_INPUT_REQUIRED") == "TASK_STATE_INPUT_REQUIRED"
    assert V03.state("TASK_STATE_INPUT_REQUIRED") == "input-required"
