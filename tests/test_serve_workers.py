"""`fmkit serve --workers 2`: one port, two worker processes, one key store (the workspace's SQLite file).

A real server process tree on loopback: both workers answer, a key made by `fmkit keys create` works on
each, a revocation by `fmkit keys revoke` reaches each within the key cache time, and the audit rows
both workers write land in the one log. Bad --workers values stop the command before anything starts.
"""

from __future__ import annotations

import time

import pytest

from serve_workers_fixtures import children, create_key, fmkit, on_every_worker, workers_server

from fmkit.serve.keys import KeyStore

KEY_CACHE_S = 1.0


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("workers")
    admin = create_key(workspace, "admin")["key"]
    with workers_server(tiny_bundle, workspace, 2, "--key-cache-seconds", str(KEY_CACHE_S)) as (process, base, pids):
        yield process, base, pids, workspace, admin


def predict(key):
    return lambda client: client.post("/v1/models/reviews:predict", headers={"Authorization": f"Bearer {key}"},
                                      json={"texts": ["a warm and great film"]})


def test_two_worker_processes_answer_on_one_port(server):
    process, base, pids, _, _ = server
    assert len(pids) == 2 and pids <= children(process.pid) and process.pid not in pids


def test_a_cli_key_works_on_every_worker_and_its_revocation_reaches_all(server):
    _, base, pids, workspace, _ = server
    made = create_key(workspace, "predict", "--models", "reviews")
    answers = on_every_worker(base, pids, predict(made["key"]), lambda r: r.status_code == 200)
    assert all(r.status_code == 200 for rs in answers.values() for r in rs), \
        {pid: [r.status_code for r in rs] for pid, rs in answers.items()}
    assert all(r.json()["predictions"][0]["label"] for rs in answers.values() for r in rs)

    fmkit("keys", "revoke", made["id"], "--workspace", str(workspace))  # both workers hold the key in their cache
    revoked = time.monotonic()
    refused = on_every_worker(base, pids, predict(made["key"]), lambda r: r.status_code == 401, seconds=20)
    elapsed = time.monotonic() - revoked
    # every worker refuses within the cache time (plus the requests' own time on a busy 2-core machine)
    assert elapsed < KEY_CACHE_S + 3.0, f"the revocation took {elapsed:.1f} s to reach every worker"
    time.sleep(KEY_CACHE_S + 0.2)  # past the cache time no worker may accept it any more
    after = on_every_worker(base, pids, predict(made["key"]), lambda r: True)
    assert {r.status_code for rs in after.values() for r in rs} == {401}


def test_audit_rows_from_both_workers_land_in_one_log(server):
    _, base, pids, workspace, admin = server
    sent: dict[str, int] = {}  # model name of each request -> the worker that answered (and audited) it
    counter = iter(range(10_000))

    def probe(client):
        name = f"probe-{next(counter)}"
        response = client.post(f"/v1/models/{name}:predict", headers={"Authorization": f"Bearer {admin}"},
                               json={"texts": ["x"]})
        sent[name] = int(response.headers["x-fmkit-worker"])
        return response

    on_every_worker(base, pids, probe, lambda r: r.status_code == 404)
    assert set(sent.values()) == pids
    deadline = time.monotonic() + 10  # each worker flushes its audit buffer every 0.5 s
    while True:
        logged = {row["model"]: row for row in KeyStore(workspace).audit_rows(limit=10_000)
                  if (row["model"] or "").startswith("probe-")}
        if set(logged) >= set(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert set(sent) <= set(logged), f"audit rows missing for {sorted(set(sent) - set(logged))}"
    assert {logged[name]["status"] for name in sent} == {404}


def test_load_and_unload_are_refused_when_a_request_reaches_one_worker(server):
    _, base, pids, _, admin = server
    import httpx

    headers = {"Authorization": f"Bearer {admin}"}
    load = httpx.post(f"{base}/v1/models/other:load", headers=headers, json={"bundle": "/nowhere"}, timeout=30)
    assert load.status_code == 409 and load.json()["error"]["code"] == "per_worker", load.text
    assert "--bundle" in load.json()["error"]["message"]
    unload = httpx.delete(f"{base}/v1/models/reviews", headers=headers, timeout=30)
    assert unload.status_code == 409
    still = on_every_worker(base, pids, lambda c: c.get("/v1/models", headers=headers), lambda r: True)
    assert all([m["name"] for m in r.json()] == ["reviews"] for rs in still.values() for r in rs)


@pytest.mark.parametrize("value, message", [("0", "workers=0: run at least 1 worker process"),
                                            ("-2", "workers=-2: run at least 1 worker process"),
                                            ("two", "invalid int value: 'two'")])
def test_bad_workers_values_stop_before_anything_starts(tiny_bundle, tmp_path, value, message):
    result = fmkit("serve", "--bundle", f"reviews={tiny_bundle}", "--workspace", str(tmp_path), "--workers", value,
                   check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / ".fmkit").exists()  # nothing was started or created
