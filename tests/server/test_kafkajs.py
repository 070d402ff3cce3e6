"""kafkajs (a Node.js client nobody here wrote) against `streamlab serve`.

The kafkajs side is tests/server/js/scenario.js, run with node: one scenario per process,
its result as JSON on stdout. kafkajs is pinned in tests/server/js/package-lock.json;
`.ci/run` installs it with `npm ci --prefix tests/server/js`. Without node or that install
these tests skip, saying so. KAFKAJS_DEBUG=1 in the environment turns on kafkajs's debug
log (in the failure message), next to serve's log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from harness import ServerProcess
from secure_harness import USERS, SecureServer, make_certificates, tls_args, users_file

import streamlab
from streamlab.model.partitioner import partition_for_key

JS_DIR = Path(__file__).parent / "js"
NODE = shutil.which("node")
BASE_TS = 1_750_000_000_000
KEEP = {"retention.ms": "-1"}  # records at BASE_TS are older than the default 7 days' retention

if NODE is None:
    pytestmark = pytest.mark.skip(reason="node is not installed (the kafkajs tests need Node.js 14 or later)")
elif not (JS_DIR / "node_modules" / "kafkajs" / "package.json").exists():
    pytestmark = pytest.mark.skip(reason="kafkajs is not installed: run `npm ci --prefix tests/server/js`")


def kafkajs(server: ServerProcess, scenario: str, *, timeout_s: float = 20, **args: Any) -> dict[str, Any]:
    """Run one scenario of scenario.js against ``server``; its JSON result."""
    assert NODE is not None
    args = {"bootstrap": server.bootstrap, "timeoutMs": int(timeout_s * 1000), **args}
    env = {**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"}
    done = subprocess.run([NODE, "scenario.js", scenario, json.dumps(args)], cwd=JS_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout_s + 10, check=False)  # fmt: skip
    assert done.returncode == 0, _failure(server, scenario, done.returncode, done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _failure(server: ServerProcess, scenario: str, code: int | None, stderr: str) -> str:
    return f"kafkajs {scenario} exited {code}:\n{stderr[-6000:]}\n--- serve's log:\n{server.log()[-4000:]}"


def _messages(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """kafkajs messages: keyed, with headers and explicit timestamps (10 ms apart)."""
    return [{"key": f"user-{i % 7}", "value": f"value-{i}", "timestamp": str(BASE_TS + i * 10),
             "headers": {"n": str(i), "source": "kafkajs"}} for i in range(start, start + count)]  # fmt: skip


def _utc(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _kafka_lab(server: ServerProcess) -> streamlab.Lab:
    return streamlab.connect(f"kafka://{server.bootstrap}")


def test_admin_creates_lists_and_describes_topics(shared_server: ServerProcess) -> None:
    retention = [{"name": "retention.ms", "value": "3600000"}]
    topics = [{"topic": "kjs-admin-a", "numPartitions": 2, "configEntries": retention},
              {"topic": "kjs-admin-b", "numPartitions": 1}]  # fmt: skip
    out = kafkajs(shared_server, "admin", topics=topics, grow={"topic": "kjs-admin-a", "count": 3},
                  remove="kjs-admin-b")  # fmt: skip
    assert (out["created"], out["createdAgain"]) == (True, False)  # false: it already exists
    assert {"kjs-admin-a", "kjs-admin-b"} <= set(out["listed"])
    assert "kjs-admin-a" in out["afterDelete"] and "kjs-admin-b" not in out["afterDelete"]
    by_name = {t["name"]: t["partitions"] for t in out["metadata"]["topics"]}
    assert [(p["partitionId"], p["leader"], p["replicas"], p["isr"], p["partitionErrorCode"])
            for p in sorted(by_name["kjs-admin-a"], key=lambda p: p["partitionId"])] == [
        (p, 0, [0], [0], 0) for p in range(3)]  # fmt: skip
    assert out["offsets"]["kjs-admin-a"] == [{"partition": p, "offset": "0", "high": "0", "low": "0"} for p in range(3)]
    (resource,) = out["configs"]["resources"]
    entries = {e["configName"]: e for e in resource["configEntries"]}
    assert (entries["retention.ms"]["configValue"], entries["retention.ms"]["isDefault"]) == ("3600000", False)
    host, port = shared_server.bootstrap.split(":")
    assert out["cluster"]["brokers"] == [{"nodeId": 0, "host": host, "port": int(port)}]
    assert out["cluster"]["controller"] == 0
    with _kafka_lab(shared_server) as lab:  # what kafkajs did is what another client sees
        topics_now = lab.topics().set_index("name")
        assert topics_now.loc["kjs-admin-a", "partitions"] == 3
        assert "kjs-admin-b" not in topics_now.index


def test_group_of_two_shares_four_partitions_exactly_once(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=4)
    out = kafkajs(shared_server, "group", topic=topic, groupId="kjs-group", members=2, partitions=4, count=200)
    owners = {int(m): set(parts) for m, parts in out["owners"].items()}
    assert owners[0] and owners[1] and not owners[0] & owners[1] and owners[0] | owners[1] == {0, 1, 2, 3}
    (described,) = out["described"]["groups"]
    assert (described["state"], described["protocolType"], len(described["members"])) == ("Stable", "consumer", 2)

    got = out["got"]
    values = Counter(r["value"] for r in got)
    assert values == Counter(f"event-{i}" for i in range(400)), "every record once, none twice"
    for r in got:
        assert r["partition"] == partition_for_key(r["key"].encode(), 4)  # kafkajs's partitioner is Kafka's murmur2
        if r["phase"] == 1:  # both members: each read only its own partitions
            assert r["partition"] in owners[r["member"]]
        else:  # after the second left, the first took over from the committed offsets
            assert r["member"] == 0
    for partition in range(4):
        offsets = [r["offset"] for r in got if r["partition"] == partition]
        assert offsets == list(range(len(offsets)))  # in order, dense, once

    ends = Counter(r["partition"] for r in got)
    (committed,) = out["committed"]
    assert {p["partition"]: int(p["offset"]) for p in committed["partitions"]} == ends
    (after_set,) = out["afterSet"]
    assert {p["partition"]: int(p["offset"]) for p in after_set["partitions"]} == {**ends, 0: 5}
    with _kafka_lab(shared_server) as lab:
        lag = lab.lag("kjs-group").set_index("partition")
        assert lag["committed"].to_dict() == {**ends, 0: 5}
        assert lag["lag"].to_dict() == {0: ends[0] - 5, 1: 0, 2: 0, 3: 0}
        groups = lab.groups().set_index("group")
        assert groups.loc["kjs-group", "state"] == "Empty"  # both left


def test_transactions_commit_and_abort_for_a_read_committed_consumer(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=2)
    out = kafkajs(shared_server, "transactions", topic=topic, transactionalId="kjs-txn", count=20)
    committed = sorted(r["value"] for r in out["committed"]["got"])
    assert committed == sorted(f"{label}-{i}" for label in ("first", "plain", "second") for i in range(20))
    uncommitted = Counter(r["value"].split("-")[0] for r in out["uncommitted"]["got"])
    # read_uncommitted sees the aborted records too
    assert uncommitted == {"first": 20, "other": 20, "plain": 20, "aborted": 20, "second": 20}
    for name in ("committed", "uncommitted"):
        for partition in (0, 1):  # in offset order, each once
            offsets = [r["offset"] for r in out[name]["got"] if r["partition"] == partition]
            assert offsets == sorted(set(offsets))
    # the offsets sent in the transactions: the committed one's, never the aborted one's
    (app,) = out["appOffsets"]
    assert {p["partition"]: p["offset"] for p in app["partitions"]}[0] == "7"

    with _kafka_lab(shared_server) as lab:
        ends = lab.offsets(topic).set_index("partition")["high_watermark"].to_dict()
        for name in ("committed", "uncommitted"):  # kafkajs moved past the last commit markers
            last = {int(k.split("/")[1]): v for k, v in out[name]["lastOffsets"].items()}
            assert last == {p: end - 1 for p, end in ends.items() if end > 0}
        lag = lab.lag("kjs-txn-rc")
        assert lag["lag"].sum() == 0 and set(lag["partition"]) == {p for p, end in ends.items() if end > 0}
        assert lab.lag("kjs-txn-app").set_index("partition").loc[0, "committed"] == 7


def test_a_second_transactional_producer_fences_the_first(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=1)
    out = kafkajs(shared_server, "fencing", topic=topic, transactionalId="kjs-fence")
    # Produce v7 and EndTxn v1 predate PRODUCER_FENCED (KIP-588): the old epoch's error
    assert out["errors"] == {"send": "INVALID_PRODUCER_EPOCH", "commit": "INVALID_PRODUCER_EPOCH"}
    assert [r["value"] for r in out["got"]] == ["fresh-1"]  # zombie-1 was aborted, zombie-2 refused


def test_delete_records_and_a_seek_below_the_log_start(
    shared_server: ServerProcess, create_shared_topic: Callable[..., str]
) -> None:
    topic = create_shared_topic(partitions=1)
    out = kafkajs(shared_server, "deleteRecords", topic=topic, count=20, deleteBefore=10, seekTo=2)
    assert out["offsets"] == [{"partition": 0, "offset": "20", "high": "20", "low": "10"}]
    assert out["got"] == list(range(10, 20))  # OFFSET_OUT_OF_RANGE, then from the log start
    with _kafka_lab(shared_server) as lab:
        assert lab.offsets(topic)["log_start_offset"].tolist() == [10]


def test_seek_to_a_timestamp(shared_server: ServerProcess, create_shared_topic: Callable[..., str]) -> None:
    topic = create_shared_topic(partitions=2, config=KEEP)
    kafkajs(shared_server, "produce", topic=topic, messages=_messages(300), compression="gzip")
    with _kafka_lab(shared_server) as lab:
        rows = lab.replay(topic, raw=True)
        ends = lab.offsets(topic).set_index("partition")["high_watermark"].to_dict()
    target = BASE_TS + 150 * 10
    out = kafkajs(shared_server, "seek", topic=topic, timestamp=target, expect=150)
    expected = {}  # the first offset at or after the target, per partition
    for partition in (0, 1):
        times = rows[rows["partition"] == partition]
        later = times[times["timestamp"] >= _utc(target)]
        expected[partition] = str(int(later["offset"].min()))
    assert {o["partition"]: o["offset"] for o in out["byTime"]} == expected
    assert {o["partition"]: int(o["offset"]) for o in out["late"]} == ends  # nothing that late: the end
    assert sorted(int(r["value"].split("-")[1]) for r in out["got"]) == list(range(150, 300))


@pytest.mark.slow
def test_produced_records_read_back_by_streamlab_across_a_restart(
    server: ServerProcess, create_topic: Callable[..., str]
) -> None:
    """Plain and idempotent+GZIP producers; the idempotent one goes on after serve is
    killed (-9) and restarted under it. Then serve stops and streamlab reads the directory."""
    plain, idempotent = create_topic(partitions=2, config=KEEP), create_topic(partitions=3, config=KEEP)
    plain_messages, idempotent_messages = _messages(200), _messages(300, start=1000)
    acked_plain = kafkajs(server, "produce", topic=plain, messages=plain_messages)["acked"]

    assert NODE is not None
    args = {"bootstrap": server.bootstrap, "topic": idempotent, "messages": idempotent_messages, "idempotent": True,
            "compression": "gzip", "pauseAfter": 150, "retries": 30, "timeoutMs": 40_000}  # fmt: skip
    env = {**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"}
    proc = subprocess.Popen([NODE, "scenario.js", "produce", json.dumps(args)], cwd=JS_DIR, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()  # blocks until the first 150 are acknowledged (or node exits)
        if not line:
            _, err = proc.communicate(timeout=10)
            pytest.fail(_failure(server, "produce", proc.returncode, err))
        assert json.loads(line) == {"paused": 150}
        server.restart(kill=True)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, _failure(server, "produce", proc.returncode, err)
    acked_idempotent = json.loads(out.splitlines()[-1])["acked"]
    assert server.stop() == 0

    with streamlab.connect(server.data_dir) as lab:
        for topic, messages, acked, partitions in ((plain, plain_messages, acked_plain, 2),
                                                   (idempotent, idempotent_messages, acked_idempotent, 3)):  # fmt: skip
            rows = lab.replay(topic, raw=True, headers=True).to_dict("records")
            assert len(rows) == len(messages), "every acknowledged record once, none twice"
            got = {r["value"].decode(): r for r in rows}
            for m in messages:
                row = got[m["value"]]
                assert row["key"] == m["key"].encode()
                assert row["partition"] == partition_for_key(row["key"], partitions)
                assert row["headers"] == {k: v.encode() for k, v in m["headers"].items()}
                assert row["timestamp"] == _utc(int(m["timestamp"]))
            for partition in range(partitions):
                in_partition = [r for r in rows if r["partition"] == partition]
                assert [r["offset"] for r in in_partition] == list(range(len(in_partition)))
                sent = [m["value"] for m in messages if got[m["value"]]["partition"] == partition]
                assert [r["value"].decode() for r in in_partition] == sent  # send order kept
            for ack in acked:  # each acknowledged base offset holds a record of that partition
                assert any(r["partition"] == ack["partition"] and r["offset"] == ack["baseOffset"] for r in rows)
            assert all(ack["errorCode"] == 0 for ack in acked)


@pytest.fixture(scope="module")
def sasl_ssl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecureServer, str]]:
    """serve with SASL over TLS, and its CA certificate's path."""
    tmp = tmp_path_factory.mktemp("kafkajs-sasl-ssl")
    certs = make_certificates(tmp)
    args = ["--users-file", str(users_file(tmp)), "--allow-everyone-if-no-acl-found", *tls_args(certs)]
    proc = SecureServer(tmp / "data", tmp / "server.log", args)
    proc.start()
    try:
        yield proc, str(certs["ca"])
    finally:
        proc.kill()


@pytest.mark.slow
def test_sasl_over_tls(sasl_ssl: tuple[SecureServer, str]) -> None:
    server, ca = sasl_ssl
    for mechanism in ["plain", "scram-sha-256", "scram-sha-512"]:
        sasl = {"mechanism": mechanism, "username": "bob", "password": USERS["bob"]}
        (ack,) = kafkajs(server, "produce", topic="kjs-secure", ca=ca, sasl=sasl,
                         messages=[{"value": f"over {mechanism}"}])["acked"]  # fmt: skip
        assert ack["errorCode"] == 0
    sasl = {"mechanism": "scram-sha-512", "username": "alice", "password": USERS["alice"]}
    got = kafkajs(server, "resume", topic="kjs-secure", groupId="kjs-secure", count=3, ca=ca, sasl=sasl)["got"]
    assert sorted(r["value"] for r in got) == ["over plain", "over scram-sha-256", "over scram-sha-512"]

    assert NODE is not None
    wrong = {"bootstrap": server.bootstrap, "topic": "kjs-secure", "ca": ca, "messages": [{"value": "x"}],
             "sasl": {**sasl, "username": "bob", "password": "wrong"}, "timeoutMs": 10_000}  # fmt: skip
    done = subprocess.run([NODE, "scenario.js", "produce", json.dumps(wrong)], cwd=JS_DIR, capture_output=True,
                          text=True, timeout=20, check=False)  # fmt: skip
    assert done.returncode == 1 and "KafkaJSSASLAuthenticationError" in done.stderr
