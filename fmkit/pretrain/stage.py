"""``pretrain``: a corpus -> a masked-LM base bundle, through the shared training loop.

From scratch: train a WordPiece tokenizer, build a BERT of a named size. Continued
(domain-adaptive): start from an existing model and its tokenizer, adding an MLM head tied to
the input embeddings where the model has none (MiniLM). Either way the corpus is packed once
into a token stream on disk, masked on the fly, and scored on held-out documents (masked-token
accuracy, perplexity). The bundle's task is ``masked-lm``: ``fmkit finetune --model BUNDLE``
turns it into a classifier.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import warnings
from pathlib import Path

from fmkit.bundle import LineageEntry, Manifest, read_manifest, write_bundle
from fmkit.errors import BadInputError
from fmkit.pretrain.config import (CONTINUED_LEARNING_RATE, DEFAULT_VOCAB_SIZE, SCRATCH_LEARNING_RATE,
                                   PretrainConfig)
from fmkit.tasks.masked_lm import NAME as TASK

MAX_POSITIONS = 512  # a new model's position table: fine-tuning may use longer texts than pretraining
EVAL_SEED_OFFSET = 7919  # held-out masks: fixed for the whole run, independent of training batches


def _tokenizer_and_model(cfg: PretrainConfig, corpus, work: Path, resume: bool):
    """(tokenizer, model, base record, the base bundle's lineage, facts for the manifest)."""
    from transformers import AutoTokenizer

    from fmkit.finetune.text_model import base_model_record
    from fmkit.models import resolve_model
    from fmkit.pretrain.model import load_mlm_model, new_mlm_model
    from fmkit.pretrain.tokenizer import train_wordpiece

    if cfg.from_model is not None:
        base = resolve_model(cfg.from_model)
        tokenizer = AutoTokenizer.from_pretrained(str(base.path))
        model, created = load_mlm_model(base.path, cfg.train.seed)
        positions = model.config.max_position_embeddings
        if cfg.seq_length > positions:
            raise BadInputError(f"seq_length={cfg.seq_length} exceeds {cfg.from_model}'s {positions} positions; "
                                f"use --seq-length {positions} or less")
        lineage = read_manifest(base.path).lineage if base.is_bundle else []
        return tokenizer, model, base_model_record(base), lineage, {"mlm_head_created": created}
    saved = work / "tokenizer"
    seconds = None
    if resume and (saved / "tokenizer.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(saved))
    else:
        started = time.time()
        tokenizer = train_wordpiece(corpus.documents(), cfg.vocab_size or DEFAULT_VOCAB_SIZE,
                                    lowercase=cfg.lowercase, min_frequency=cfg.min_frequency)
        tokenizer.save_pretrained(str(saved))
        seconds = round(time.time() - started, 1)
    model = new_mlm_model(cfg.size_name, tokenizer, MAX_POSITIONS, cfg.train.seed)
    base = {"name": f"scratch:{cfg.size_name}", "path": None, "digest": None}
    trained = {"vocab_size": len(tokenizer), "requested": cfg.vocab_size or DEFAULT_VOCAB_SIZE,
               "lowercase": cfg.lowercase, "min_frequency": cfg.min_frequency, "seconds": seconds}
    return tokenizer, model, base, [], {"tokenizer_trained": trained}


def run_pretrain(cfg: PretrainConfig, out: Path, *, resume: bool = False, overwrite: bool = False,
                 keep_checkpoints: bool = False, callbacks=(), echo=None) -> Manifest:
    """Pretrain per ``cfg`` and write the ``masked-lm`` bundle ``out``; ``callbacks`` watch training
    (fmkit/train/callbacks.py); ``echo`` gets the loop's choices as lines (the schedule, and under torchrun the ranks
    and the global batch), from rank 0 only (default: the ``fmkit.pretrain`` logger).

    Under torchrun rank 0 trains the tokenizer and packs the corpus first (the others then read its files: on
    several machines ``out`` must be on a shared filesystem), every rank trains, rank 0 scores and writes the
    bundle; a ``torchrun --max-restarts`` restart resumes from the last checkpoint.
    """
    from fmkit.offline import enforce_offline

    enforce_offline()
    import torch

    from fmkit.finetune.stage import checkpoint_dir_for
    from fmkit.pretrain.batches import PackedMLMBatches
    from fmkit.pretrain.corpus import open_corpus
    from fmkit.pretrain.masking import Masker
    from fmkit.pretrain.model import evaluate_mlm, mlm_loss
    from fmkit.pretrain.packing import pack_corpus
    from fmkit.train import distributed, train
    from fmkit.train.precision import resolve_precision, select_device

    ranks = distributed.setup(cfg.train.device)
    echo = (echo or logging.getLogger("fmkit.pretrain").info) if ranks.is_main else None  # one log for the job
    resume = resume or ranks.restart_count > 0
    out = Path(out)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    started = time.time()
    corpus = open_corpus(cfg.corpus)
    checkpoints = checkpoint_dir_for(out)
    checkpoints.mkdir(parents=True, exist_ok=True)

    def prepare(reuse: bool):
        tokenizer, model, base_record, parent_lineage, model_facts = _tokenizer_and_model(cfg, corpus, checkpoints,
                                                                                          reuse)
        packed = pack_corpus(corpus.documents(), tokenizer, cfg.seq_length, checkpoints / "packed",
                             heldout_fraction=cfg.heldout_fraction, progress=cfg.train.progress and ranks.is_main)
        return tokenizer, model, base_record, parent_lineage, model_facts, packed

    if ranks.active:  # rank 0 writes the tokenizer and the packed stream; the others read them
        prepared: list = []

        def on_rank0():
            prepared.append(prepare(resume))
            return prepared[0][4], prepared[0][5]  # the facts and the packed stream's description: small

        model_facts, packed = distributed.on_main(ranks, on_rank0)
        if ranks.is_main:
            tokenizer, model, base_record, parent_lineage = prepared[0][:4]
        else:  # the saved tokenizer; a fresh model's weights come from rank 0 when DDP wraps it
            tokenizer, model, base_record, parent_lineage, _ = _tokenizer_and_model(cfg, corpus, checkpoints, True)
    else:
        tokenizer, model, base_record, parent_lineage, model_facts, packed = prepare(resume)

    train_cfg = cfg.train
    if train_cfg.learning_rate is None:
        default = SCRATCH_LEARNING_RATE if cfg.from_model is None else CONTINUED_LEARNING_RATE
        train_cfg = train_cfg.model_copy(update={"learning_rate": default})
    if cfg.max_tokens is not None:
        global_batch = train_cfg.batch_size * train_cfg.gradient_accumulation_steps * ranks.world_size
        steps = math.ceil(cfg.max_tokens / (global_batch * cfg.seq_length))
        train_cfg = train_cfg.model_copy(update={"max_steps": steps})

    masker = Masker.for_tokenizer(tokenizer, cfg.mask_probability, cfg.whole_word_masking)
    batches = PackedMLMBatches(packed.train, train_cfg.batch_size, masker, tokenizer.pad_token_id, train_cfg.seed)
    device = select_device(train_cfg.device)
    precision = resolve_precision(train_cfg.precision, device)
    evaluate_fn, eval_batches = None, []
    if packed.heldout.num_sequences:
        held = PackedMLMBatches(packed.heldout, 64, masker, tokenizer.pad_token_id, train_cfg.seed + EVAL_SEED_OFFSET,
                                shuffle=False, limit=cfg.max_eval_sequences)
        eval_batches = list(held.batches(0))

        def evaluate_fn(m):
            return evaluate_mlm(m, eval_batches, device, precision)
    else:
        warnings.warn(f"no held-out text (heldout_fraction={cfg.heldout_fraction}, {packed.summary()['documents']} "
                      "documents): masked accuracy and perplexity are not measured and the last weights are kept",
                      stacklevel=2)

    result = train(model, batches, train_cfg, loss_fn=mlm_loss, evaluate_fn=evaluate_fn,
                   selection_metric="masked_accuracy", checkpoint_dir=checkpoints, resume=resume,
                   announce=echo, callbacks=callbacks)
    return distributed.on_main(ranks, lambda: _score_and_write(
        cfg, out, overwrite, keep_checkpoints, model, tokenizer, result, batches, eval_batches, device, precision,
        base_record, parent_lineage, corpus, packed, model_facts, started, checkpoints))


def _score_and_write(cfg, out, overwrite, keep_checkpoints, model, tokenizer, result, batches, eval_batches, device,
                     precision, base_record, parent_lineage, corpus, packed, model_facts, started, checkpoints):
    """After training (rank 0 under torchrun): held-out masked accuracy, the manifest, the bundle."""
    import torch

    from fmkit.pretrain.model import evaluate_mlm

    metrics = {"heldout": evaluate_mlm(model, eval_batches, device, precision)} if eval_batches else {}
    tokens_per_second = round(batches.tokens_served / result.train_seconds, 1) if result.train_seconds else 0.0

    config_record = cfg.model_dump(mode="json")
    manifest = Manifest(
        task=TASK,
        labels=[],
        max_length=cfg.seq_length,
        base_model=base_record,
        lineage=parent_lineage + [LineageEntry(stage="pretrain", config=config_record, parent_digest=base_record.get("digest"),
                              parent=base_record["name"], data_fingerprint=packed.fingerprint)],
        metrics=metrics,
        data={"corpus": corpus.describe(), **packed.summary(), "corpus_config": {"sources": list(cfg.corpus)}},
        training={**result.as_dict(), "method": TASK, "size": cfg.size_name,
                  "tokens_seen": batches.tokens_served, "tokens_per_second": tokens_per_second,
                  "masking": {"probability": cfg.mask_probability, "whole_word": cfg.whole_word_masking,
                              "mask/random/keep": [0.8, 0.1, 0.1]},
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "wall_seconds": round(time.time() - started, 1), **model_facts},
    )

    def write_files(directory: Path) -> None:
        model.save_pretrained(str(directory), safe_serialization=True)
        tokenizer.save_pretrained(str(directory))

    model.to(torch.device("cpu"))
    manifest = write_bundle(out, manifest, write_files, overwrite=overwrite)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return manifest
