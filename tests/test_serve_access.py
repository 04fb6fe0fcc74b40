"""Who may see and do what: allowlists that are never empty-means-all, an inventory filtered by key
with no server paths for non-admins, authentication before the body, audit rows for every refusal,
a private key database, validated model names and a --bundle-root that confines :load."""

import json
import os
import stat

import pytest

from fmkit.cli.main import main as cli
from fmkit.errors import BadInputError
from fmkit.serve.app import create_app
from fmkit.serve.config import ServeConfig
from fmkit.serve.keys import KeyStore
from test_serve import auth, run


def serve(bundle, workspace, **settings):
    return create_app(ServeConfig(bundles={"reviews": bundle}, workspace=workspace, **settings))


@pytest.mark.parametrize("models", [[], [""], [" ", ""], ["reviews", " "]])
def test_an_empty_or_blank_allowlist_is_an_error_not_all_models(tmp_path, models):
    with pytest.raises(BadInputError, match="blank|empty model list"):
        KeyStore(tmp_path).create("predict", models)
    assert KeyStore(tmp_path).list() == []


@pytest.mark.parametrize("flag", ["", " , ", ","])
def test_keys_create_with_empty_models_exits_2_and_names_the_fix(tmp_path, capsys, flag):
    assert cli(["keys", "create", "--role", "predict", "--models", flag, "--workspace", str(tmp_path)]) == 2
    assert "--models NAME[,NAME]" in capsys.readouterr().err and KeyStore(tmp_path).list() == []


def test_all_models_only_when_asked_for(tmp_path, capsys):
    assert cli(["keys", "create", "--role", "predict", "--models", "*", "--workspace", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == ["*"]
    assert cli(["keys", "create", "--role", "predict", "--models", " reviews, other ", "--workspace", str(tmp_path),
                "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == ["reviews", "other"]


def test_key_api_refuses_empty_and_blank_allowlists(tiny_bundle, tmp_path):
    admin = KeyStore(tmp_path).create("admin")[0]

    async def body(client):
        return [await client.post("/v1/keys", headers=auth(admin), json={"role": "predict", "models": models})
                for models in ([], [""], ["a", "  "], ["*"])]

    empty, blank, partly_blank, everything = run(serve(tiny_bundle, tmp_path), body)
    assert [empty.status_code, blank.status_code, partly_blank.status_code] == [422, 422, 422]
    assert "blank" in partly_blank.json()["error"]["message"] and "'*' for all" in blank.json()["error"]["message"]
    assert everything.status_code == 200 and everything.json()["models"] == ["*"]
    assert [k.models for k in KeyStore(tmp_path).list() if k.role == "predict"] == [("*",)]


def test_inventory_is_filtered_by_key_and_shows_paths_to_admins_only(tiny_bundle, tiny_bert_dir, reviews_csv, tmp_path):
    store = KeyStore(tmp_path)
    admin, allowed = store.create("admin")[0], store.create("predict", ["reviews"])[0]
    other, reader = store.create("predict", ["nope"])[0], store.create("read", ["reviews"])[0]
    secrets = [str(tiny_bundle.parent), str(tiny_bert_dir), str(reviews_csv.parent)]  # directories on the server

    async def body(client):
        get = lambda path, key: client.get(path, headers=auth(key))  # noqa: E731
        return {"page": await client.get("/ui"), "ready": await client.get("/readyz"),
                "admin": await get("/v1/models", admin), "allowed": await get("/v1/models", allowed),
                "reader": await get("/v1/models", reader), "other": await get("/v1/models", other),
                "card": await get("/v1/models/reviews/card", allowed),
                "admin_card": await get("/v1/models/reviews/card", admin),
                "other_404": await client.post("/v1/models/nope:predict", headers=auth(other), json={"texts": ["x"]})}

    responses = run(serve(tiny_bundle, tmp_path), body)
    assert "reviews" not in responses["page"].text and "content_digest" not in responses["page"].text
    assert responses["ready"].json() == {"status": "ready", "models": 1}
    assert responses["admin"].json()[0]["bundle"] == str(tiny_bundle)
    for name in ("allowed", "reader", "card"):
        assert responses[name].status_code == 200
        assert not [s for s in secrets if s in responses[name].text], name
    assert [m["name"] for m in responses["allowed"].json()] == ["reviews"]
    assert responses["allowed"].json()[0]["bundle"] is None
    assert "reviews.csv" in responses["card"].text  # the file's name stays, its directory goes
    assert str(reviews_csv) in responses["admin_card"].text
    assert responses["other"].json() == []
    assert "served: none" in responses["other_404"].json()["error"]["message"]


def test_authentication_comes_before_the_body_and_every_refusal_is_audited(tiny_bundle, tmp_path):
    predict = KeyStore(tmp_path).create("predict", ["reviews"])[0]
    raw = {"Content-Type": "application/json"}

    async def body(client):
        url = "/v1/models/reviews:predict"
        return [
            (await client.post(url, content=b"{not json", headers=raw)).status_code,
            (await client.post(url, json={"wrong": 1})).status_code,
            (await client.post("/v1/keys", json={"role": "nobody"})).status_code,
            (await client.post(url, content=b"{not json", headers={**raw, **auth(predict)})).status_code,
            (await client.post(url, json={"texts": "x"}, headers=auth(predict))).status_code,
            (await client.post(url, content=b"[" * 100_000, headers={**raw, **auth(predict)})).status_code,
            (await client.post(url, content=b"x" * 2_000_000, headers={**raw, **auth(predict)})).status_code,
            (await client.post("/v1/models/reviews:load", json={"bundle": 1}, headers=auth(predict))).status_code,
            (await client.get("/v1/models")).status_code,
        ]

    statuses = run(serve(tiny_bundle, tmp_path), body)
    assert statuses == [401, 401, 401, 422, 422, 400, 413, 403, 401]
    rows = KeyStore(tmp_path).audit_rows()[::-1]
    assert [(r["endpoint"], r["status"]) for r in rows] == [
        ("predict", 401), ("predict", 401), ("keys", 401), ("predict", 422), ("predict", 422), ("predict", 400),
        ("predict", 413), ("load", 403), ("/v1/models", 401)]
    key_id = predict.split("_")[1]
    assert [r["key_id"] for r in rows[3:7]] == [key_id] * 4 and rows[0]["model"] == "reviews"


def test_the_key_database_is_private(tmp_path):
    store = KeyStore(tmp_path)
    store.create("predict", ["reviews"])
    store.write_audit([("t", None, "predict", "reviews", 1, 200, 1.0, "logged")])
    for file in store.path.parent.glob("serve.sqlite*"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    store.path.chmod(0o644)  # made by an older fmkit: tightened on the next open
    KeyStore(tmp_path)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_model_names_are_validated_and_bundle_root_confines_load(tiny_bundle, tmp_path, capsys):
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True)
    (root / "models" / "inside").symlink_to(tiny_bundle)  # resolves outside the root
    copy = root / "models" / "copy"
    import shutil

    shutil.copytree(tiny_bundle, copy)
    admin = KeyStore(tmp_path).create("admin")[0]

    async def body(client):
        load = lambda name, bundle: client.post(f"/v1/models/{name}:load", headers=auth(admin),  # noqa: E731
                                                json={"bundle": str(bundle)})
        return [await load("..hidden", copy), await load("a" * 65, copy), await load("ok", root / "models" / "inside"),
                await load("ok", f"{root}/../{os.path.relpath(tiny_bundle, tmp_path)}"),
                await load("ok", "\x00"), await load("ok", root / "missing"), await load("copy.v2", copy)]

    names, long, symlink, dots, nul, missing, ok = run(serve(tiny_bundle, tmp_path, bundle_root=root), body)
    assert names.status_code == long.status_code == 422 and "path.name" in names.json()["error"]["message"]
    assert symlink.status_code == dots.status_code == 403
    assert symlink.json()["error"]["code"] == "outside_bundle_root"
    assert nul.status_code in (403, 422) and missing.status_code == 404
    assert ok.status_code == 200 and ok.json()["bundle"] == str(copy.resolve())
    with pytest.raises(ValueError, match="not allowed"):
        ServeConfig(bundles={"bad name": tiny_bundle})
    for flags in (["--bundle", f"reviews={tiny_bundle}", "--bundle", f"reviews={copy}"],
                  ["--bundle", f"bad/name={tiny_bundle}"]):
        assert cli(["serve", *flags, "--workspace", str(tmp_path)]) == 2
    errors = capsys.readouterr().err
    assert "already given to" in errors and "is not allowed" in errors
