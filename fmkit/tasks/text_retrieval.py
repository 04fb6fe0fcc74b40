"""Text retrieval: a bi-encoder fine-tuned on (query, document) pairs with in-batch negatives.

Data is a table of pairs (fmkit/retrieval/data.py: split by question, every document in the
index), the model the base encoder with the pooling it declares (fmkit/retrieval/encoder_model.py)
wrapped by the finetune method (full, LoRA), the loss multiple-negatives ranking with hard
negatives mined by the zero-shot encoder (loss.py, negatives.py), the metrics MRR@10,
Recall@1/5/10 and nDCG@10 of each split's questions against all documents (metrics.py), and the
bundle a sentence-transformers folder (layout.py) that ``fmkit.retrieval.load_encoder`` runs on
PyTorch, ONNX or INT8 ONNX (fmkit/runtime/embeddings.py). The zero-shot encoder's metrics are
recorded beside the fine-tuned ones (manifest.training["zero_shot"]).
"""

from __future__ import annotations

from dataclasses import dataclass

from fmkit.errors import BadInputError
from fmkit.tasks.base import Capabilities, TaskAdapter, TrainingSetup, register_task

NAME = "text-retrieval"
EVALUATION_BATCH = 64  # texts per batch when the finetune stage embeds a split or the index
POPULARITY_EXPONENT = 0.75  # popularity-sampled negatives: frequency^0.75 (word2vec's smoothing of the unigram draw)


def require_encoder_bundle(manifest, path) -> None:
    """Refuse a bundle that is not a text-retrieval encoder (a classifier has no embeddings to offer)."""
    if manifest.task != NAME:
        raise BadInputError(f"{path} is a {manifest.task} bundle, not a {NAME} encoder; fine-tune one with "
                            f"`fmkit finetune --task {NAME} --data PAIRS --query-column Q --document-column D`, "
                            "or pass a base model such as minilm")


@dataclass
class QuerySet:
    """One split's questions: token ids, each one's document (index position) and every right document."""

    encoded: object  # fmkit.data.batching.EncodedTexts
    positives: list[int]
    relevant: list[set[int]]


@dataclass
class RetrievalTools:
    tokenizer: object
    documents: object  # EncodedTexts of every document: the index
    negatives: object  # (training queries x hard_negatives) index positions
    pooling: str
    training_documents: list  # token ids of the index's documents, then the pseudo-questions' passages
    origin: list  # training document -> the index entry it is (or comes from)


def claims(settings: dict) -> bool:
    """Finetune settings that name a query or document column mean pairs, without `--task`."""
    data = settings.get("data") if isinstance(settings.get("data"), dict) else {}
    return "query_column" in data or "document_column" in data


def load_data(config):
    from fmkit.retrieval.data import load_pairs

    return load_pairs(config)


def embed(model, encoded, pad_id: int, device, batch_size: int = EVALUATION_BATCH):
    """(n, dim) float32 unit vectors of ``encoded`` texts from the model being trained (eval mode, no grad)."""
    import numpy as np
    import torch

    from fmkit.data.batching import pad_batch, sorted_batches

    was_training = model.training
    model.eval()
    output = None
    try:
        with torch.inference_mode():
            for rows in sorted_batches(encoded.lengths, batch_size):
                batch = pad_batch([encoded.input_ids[i] for i in rows], pad_id)
                vectors = model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu().numpy()
                if output is None:
                    output = np.zeros((len(encoded.input_ids), vectors.shape[1]), dtype=np.float32)
                output[rows] = vectors
    finally:
        model.train(was_training)
    return output if output is not None else np.zeros((0, 0), dtype=np.float32)


def prepare(cfg, data) -> TrainingSetup:
    """The base encoder (its declared pooling) wrapped by the method; every split tokenized; the zero-shot pass
    that mines the training queries' hard negatives and scores the held-out ones."""
    import warnings

    import numpy as np
    import torch

    from fmkit.bundle import read_manifest
    from fmkit.data.batching import encode_texts
    from fmkit.finetune.methods import FINETUNE_METHODS
    from fmkit.finetune.text_model import base_model_record
    from fmkit.models import resolve_model
    from fmkit.retrieval.encoder_model import load_bi_encoder
    from fmkit.retrieval.methods import prepare_encoder
    from fmkit.retrieval.metrics import ranking_metrics
    from fmkit.retrieval.negatives import mine_hard_negatives, popularity_negatives
    from fmkit.train.precision import select_device
    from transformers import AutoTokenizer

    base = resolve_model(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    model = load_bi_encoder(base.path)
    documents = encode_texts(tokenizer, data.documents, cfg.max_length, warn=False)
    position = {key: index for index, key in enumerate(data.label_names)}
    inputs = {}
    for name, rows in data.splits.items():
        inputs[name] = QuerySet(encode_texts(tokenizer, [data.queries[i] for i in rows], cfg.max_length, warn=False),
                                [position[data.labels[i]] for i in rows], data.relevant(rows))
    truncated = {name: s.encoded.truncated for name, s in inputs.items() if s.encoded.truncated}
    if documents.truncated:
        truncated["documents"] = documents.truncated
    if truncated:
        warnings.warn(f"texts longer than max_length={cfg.max_length} tokens were truncated: {truncated}; raise "
                      "--max-length to keep them whole", stacklevel=3)

    device = select_device(cfg.train.device)
    model.to(device)
    index = embed(model, documents, tokenizer.pad_token_id, device)
    zero_shot = {name: ranking_metrics(embed(model, inputs[name].encoded, tokenizer.pad_token_id, device), index,
                                       inputs[name].relevant)
                 for name in ("validation", "test") if data.splits[name]}
    train = inputs["train"]
    count = min(cfg.hard_negatives, max(len(data.documents) - 1, 0))
    if cfg.negative_sampling == "popularity":
        negatives, mining = popularity_negatives(train.positives, train.relevant, len(data.documents), count,
                                                 POPULARITY_EXPONENT, cfg.train.seed)
    else:
        negatives, mining = mine_hard_negatives(
            embed(model, train.encoded, tokenizer.pad_token_id, device) if train.positives else np.zeros((0, 1)),
            index, train.positives, train.relevant, count, cfg.mining_depth, cfg.mining_margin, cfg.train.seed)
    training_documents, origin, pseudo = documents.input_ids, list(range(len(data.documents))), 0
    if cfg.document_queries:
        inputs["train"], negatives, training_documents, origin, pseudo = with_document_queries(
            cfg, model, tokenizer, data, index, documents, inputs["train"], negatives, device)
    model.cpu()
    torch.manual_seed(cfg.train.seed)  # LoRA's initialisation
    method = FINETUNE_METHODS.get(cfg.method_name)
    return TrainingSetup(
        model=prepare_encoder(model, cfg.method), inputs=inputs, base=base_model_record(base), parent=str(base.name),
        parent_lineage=read_manifest(base.path).lineage if base.is_bundle else [],
        default_learning_rate=method.default_learning_rate,
        tools=RetrievalTools(tokenizer, documents, negatives, model.pooling, training_documents, origin),
        manifest_fields={"max_length": cfg.max_length},
        facts={"pooling": model.pooling, "index_size": len(data.documents), "zero_shot": zero_shot,
               "loss": {"name": "multiple-negatives ranking", "scale": cfg.scale, "symmetric": cfg.symmetric},
               "mining": mining, "document_queries": pseudo})


def with_document_queries(cfg, model, tokenizer, data, index, documents, train: QuerySet, negatives, device):
    """The training queries plus one pseudo-question per document (fmkit/retrieval/pseudo.py), each with its
    passage as a training document and hard negatives mined like a real question's."""
    import numpy as np

    from fmkit.data.batching import EncodedTexts, encode_texts
    from fmkit.retrieval.negatives import mine_hard_negatives
    from fmkit.retrieval.pseudo import pseudo_pairs

    pairs = pseudo_pairs(data.documents)
    if not pairs:
        return train, negatives, documents.input_ids, list(range(len(data.documents))), 0
    queries = encode_texts(tokenizer, [query for _, query, _ in pairs], cfg.max_length, warn=False)
    passages = encode_texts(tokenizer, [passage for _, _, passage in pairs], cfg.max_length, warn=False)
    sources = [position for position, _, _ in pairs]
    mined, _ = mine_hard_negatives(embed(model, queries, tokenizer.pad_token_id, device), index, sources,
                                   [{p} for p in sources], negatives.shape[1], cfg.mining_depth, cfg.mining_margin,
                                   cfg.train.seed + 1)
    first = len(data.documents)
    train = QuerySet(EncodedTexts(train.encoded.input_ids + queries.input_ids, train.encoded.truncated),
                     train.positives + [first + j for j in range(len(pairs))], train.relevant + [{p} for p in sources])
    return (train, np.concatenate([negatives, mined]), documents.input_ids + passages.input_ids,
            list(range(first)) + sources, len(pairs))


def batches(setup: TrainingSetup, cfg, inputs: QuerySet, label_ids):
    from fmkit.retrieval.batches import PairBatches

    return PairBatches(inputs.encoded.input_ids, inputs.positives, inputs.relevant, setup.tools.negatives,
                       setup.tools.training_documents, batch_size=cfg.train.batch_size,
                       pad_id=setup.tools.tokenizer.pad_token_id, seed=cfg.train.seed, scale=cfg.scale,
                       symmetric=cfg.symmetric, origin=setup.tools.origin)


def loss(model, batch):
    from fmkit.retrieval.loss import loss as ranking

    return ranking(model, batch)


def split_metrics(setup: TrainingSetup, model, inputs: QuerySet, label_ids, label_names, device) -> dict:
    from fmkit.retrieval.metrics import ranking_metrics

    pad = setup.tools.tokenizer.pad_token_id
    return ranking_metrics(embed(model, inputs.encoded, pad, device), embed(model, setup.tools.documents, pad, device),
                           inputs.relevant)


def save(setup: TrainingSetup, model, cfg, directory) -> dict:
    """The encoder (merged LoRA too), the tokenizer and the sentence-transformers files; the method's facts."""
    from fmkit.retrieval.layout import write_sentence_transformers_files
    from fmkit.retrieval.methods import save_encoder

    model.cpu()
    facts = save_encoder(model, directory, cfg.method)
    setup.tools.tokenizer.save_pretrained(str(directory))
    write_sentence_transformers_files(directory, setup.tools.pooling, model.dimension, cfg.max_length)
    return facts


def data_config(bundle_data: dict, cfg):
    """The bundle's own pairs settings; `fmkit evaluate --text-column/--label-column` name the query/document
    columns of another file."""
    from fmkit.retrieval.config import RetrievalDataConfig

    stored = bundle_data.get("config")
    if not stored and cfg.data is None:
        raise BadInputError("this bundle does not record its training data; pass --data FILE")
    settings = dict(stored or {})
    if cfg.data is not None and cfg.data != settings.get("source"):
        settings.pop("max_rows", None)
    overrides = {"source": cfg.data, "query_column": cfg.text_column, "document_column": cfg.label_column}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return RetrievalDataConfig.model_validate(settings)


def evaluate(bundle, manifest, data, rows, cfg) -> dict:
    """Ranking metrics of the bundle on its own runtime: the split's questions against every document."""
    from fmkit.retrieval.metrics import ranking_metrics
    from fmkit.runtime.embeddings import load_encoder

    rows = list(range(len(data.queries))) if rows is None else rows
    if not rows:
        raise BadInputError(f"the {cfg.split!r} split is empty; use --split all or more pairs")
    encoder = load_encoder(bundle, device=cfg.device, batch_size=cfg.batch_size)
    metrics = ranking_metrics(encoder.encode([data.queries[i] for i in rows]), encoder.encode(data.documents),
                              data.relevant(rows))
    return {**metrics, "runtime": encoder.runtime, "data_fingerprint": data.fingerprint}


ADAPTER = register_task(TaskAdapter(
    NAME, "a bi-encoder that finds the document (answer) for a query (MiniLM and other BERT-family encoders)",
    Capabilities(finetune_methods=("full", "lora")), examples="pairs",
    finetune_config="fmkit.retrieval.config:RetrievalFinetuneConfig", claims=claims,
    load_data=load_data, prepare=prepare, batches=batches, loss=loss, split_metrics=split_metrics, save=save,
    data_config=data_config, evaluate=evaluate, headline_metrics=("mrr@10", "recall@1", "recall@5", "recall@10",
                                                                  "ndcg@10"),
    selection_metric="mrr@10", compress="fmkit.compress.tasks:RETRIEVAL_HOOKS",
    opens_with="It is an encoder: embed texts with fmkit.runtime.embeddings.load_encoder(path).encode(texts), "
               "or serve it inside an assistant (`fmkit assistant build --encoder PATH`)."))
