"""Token attributions with Captum's layer integrated gradients on the word embeddings.

Memory stays bounded however many texts are explained: texts go through in small batches and
Captum's ``internal_batch_size`` caps how many of the ``n_steps`` interpolated copies are in one
forward/backward pass (the unbounded expansion is the OOM users hit in captum#245).

The baseline keeps [CLS]/[SEP] and replaces every other token with [PAD]; position and segment
embeddings are identical in input and baseline, so the word-embedding attributions satisfy
completeness: they sum to f(x) - f(baseline) for the explained class, up to the reported
``convergence_delta``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError


@dataclass
class Explanation:
    text: str
    label: str  # the explained class
    probability: float  # the model's probability of that class
    tokens: list[dict]  # {"token", "start", "end", "attribution"} (wordpieces; special tokens dropped)
    words: list[dict] = field(default_factory=list)  # wordpieces merged into whitespace words: {"word", "start", "end", "attribution"}
    convergence_delta: float = 0.0

    def as_dict(self) -> dict:
        return {"text": self.text, "label": self.label, "probability": self.probability, "words": self.words,
                "tokens": self.tokens, "convergence_delta": self.convergence_delta}


def _merge_words(text: str, tokens: list[dict]) -> list[dict]:
    """Sum wordpiece attributions over each whitespace-separated word of ``text``."""
    words, position = [], 0
    for word in text.split():
        start = text.index(word, position)
        end = position = start + len(word)
        inside = [t["attribution"] for t in tokens if t["start"] < end and t["end"] > start]
        words.append({"word": word, "start": start, "end": end, "attribution": float(sum(inside))})
    return words


class Explainer:
    """Layer integrated gradients for a PyTorch bundle (fp32), batched."""

    def __init__(self, bundle, *, device: str = "auto", n_steps: int = 50, internal_batch_size: int = 64,
                 batch_size: int = 8):
        from fmkit.bundle import read_manifest
        from fmkit.tasks import task_of_bundle

        manifest = read_manifest(bundle)
        if not task_of_bundle(bundle, manifest.task).capabilities.explanations:  # its adapter says; masked-LM refused
            raise BadInputError(
                f"{bundle} is a {manifest.task} bundle: its task has no explanations (integrated gradients attribute "
                "the words of a text). Predict with it (`fmkit predict`), or explain a text-classification bundle")
        if manifest.runtime != "torch":
            parent = next((e.parent for e in reversed(manifest.lineage) if e.parent), None)
            raise BadInputError(
                f"{bundle} runs on {manifest.runtime!r}; integrated gradients need the PyTorch weights. Explain the "
                f"PyTorch bundle it came from{f' ({parent})' if parent else ''}: attributions describe that model.")
        for name, value in (("n_steps", n_steps), ("internal_batch_size", internal_batch_size), ("batch_size", batch_size)):
            if value < 1:
                raise BadInputError(f"{name}={value}: must be at least 1")
        from fmkit.runtime import load_runtime

        self.runtime = load_runtime(bundle, device=device, backend="torch", allow_postprocess=True)
        self.model, self.tokenizer = self.runtime.model, self.runtime.tokenizer
        self.labels, self.max_length = self.runtime.labels, manifest.max_length
        self.n_steps, self.internal_batch_size, self.batch_size = n_steps, internal_batch_size, batch_size

    def _forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def explain(self, texts: list[str], target: str | None = None, progress: bool = False) -> list[Explanation]:
        """Attributions for each text towards ``target`` (default: the predicted class)."""
        import torch
        from captum.attr import LayerIntegratedGradients
        from tqdm.auto import tqdm

        if target is not None and target not in self.labels:
            raise BadInputError(f"--target {target!r} is not a label of this model; use one of {self.labels}")
        integrated = LayerIntegratedGradients(self._forward, self.model.get_input_embeddings())
        special = set(self.tokenizer.all_special_ids)
        device = self.runtime.device
        explanations: list[Explanation] = []
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="explaining", unit="batch", disable=not progress):
            chunk = list(texts[start:start + self.batch_size])
            encoded = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                     return_offsets_mapping=True, return_tensors="pt")
            input_ids = encoded["input_ids"].to(device)
            attention_mask = encoded["attention_mask"].to(device)
            keep = torch.tensor([[t in special for t in row] for row in input_ids.tolist()], device=device)
            baseline = torch.where(keep, input_ids, torch.full_like(input_ids, self.tokenizer.pad_token_id))
            with torch.no_grad():
                probabilities = torch.softmax(self._forward(input_ids, attention_mask).float(), dim=-1)
            targets = (probabilities.argmax(-1) if target is None
                       else torch.full((len(chunk),), self.labels.index(target), device=device))
            attributions, delta = integrated.attribute(
                inputs=input_ids, baselines=baseline, additional_forward_args=(attention_mask,), target=targets,
                n_steps=self.n_steps, internal_batch_size=self.internal_batch_size, return_convergence_delta=True)
            scores = attributions.sum(dim=-1).detach().float().cpu().numpy()
            for row, text in enumerate(chunk):
                ids, offsets = encoded["input_ids"][row].tolist(), encoded["offset_mapping"][row].tolist()
                tokens = [{"token": self.tokenizer.convert_ids_to_tokens(token_id), "start": int(s), "end": int(e),
                           "attribution": float(scores[row, position])}
                          for position, (token_id, (s, e)) in enumerate(zip(ids, offsets))
                          if token_id not in special and attention_mask[row, position]]
                label_index = int(targets[row])
                explanations.append(Explanation(
                    text=text, label=self.labels[label_index], probability=float(probabilities[row, label_index]),
                    tokens=tokens, words=_merge_words(text, tokens), convergence_delta=float(delta[row])))
        return explanations

    def probability_of(self, texts: list[str], labels: list[str]) -> np.ndarray:
        probabilities = self.runtime.predict_proba(texts)
        return probabilities[np.arange(len(texts)), [self.labels.index(label) for label in labels]]


def class_top_words(explanations: list[Explanation], top: int = 10, min_count: int = 3) -> dict[str, list[dict]]:
    """Per explained class, the words with the largest mean attribution towards it (seen ``min_count``+ times)."""
    by_class: dict[str, dict[str, list[float]]] = {}
    for explanation in explanations:
        for word in explanation.words:
            key = word["word"].lower().strip(".,!?;:\"'()")
            if key:
                by_class.setdefault(explanation.label, {}).setdefault(key, []).append(word["attribution"])
    return {label: [{"word": w, "mean_attribution": float(np.mean(v)), "count": len(v)}
                    for w, v in sorted(words.items(), key=lambda item: -np.mean(item[1])) if len(v) >= min_count][:top]
            for label, words in sorted(by_class.items())}


def _without(text: str, words: list[dict], drop: set[int]) -> str:
    return " ".join(word["word"] for index, word in enumerate(words) if index not in drop)


def deletion_faithfulness(explainer: Explainer, explanations: list[Explanation], k: int = 3, seed: int = 0) -> dict:
    """Delete each text's top-k attributed words vs k random words: how much does the explained class drop?

    A faithful explanation names the words the model relies on, so deleting them moves the prediction
    more than deleting random words. Texts with at most k words are skipped.
    """
    rng = np.random.default_rng(seed)
    usable = [e for e in explanations if len(e.words) > k]
    if not usable:
        return {"k": k, "texts": 0, "note": f"no text has more than {k} words"}
    top_texts, random_texts = [], []
    for e in usable:
        order = np.argsort([-w["attribution"] for w in e.words])
        top_texts.append(_without(e.text, e.words, set(order[:k].tolist())))
        random_texts.append(_without(e.text, e.words, set(rng.choice(len(e.words), size=k, replace=False).tolist())))
    labels = [e.label for e in usable]
    original = np.array([e.probability for e in usable])
    drop_top = original - explainer.probability_of(top_texts, labels)
    drop_random = original - explainer.probability_of(random_texts, labels)
    return {"k": k, "texts": len(usable), "mean_drop_top_k": float(drop_top.mean()),
            "mean_drop_random_k": float(drop_random.mean()),
            "faithfulness_gap": float(drop_top.mean() - drop_random.mean()),
            "share_top_beats_random": float((drop_top > drop_random).mean())}


def _colour(value: float, scale: float) -> str:
    strength = 0.0 if scale == 0 else min(1.0, abs(value) / scale)
    return (f"rgba(22,163,74,{strength * 0.75:.2f})" if value >= 0 else f"rgba(220,38,38,{strength * 0.75:.2f})")


def explanation_html(explanations: list[Explanation], title: str) -> str:
    """One static page: each text with its words shaded green (towards the class) or red (against)."""
    rows = []
    for e in explanations:
        scale = max((abs(w["attribution"]) for w in e.words), default=0.0)
        spans = " ".join(f"<span class='w' style='background:{_colour(w['attribution'], scale)}' "
                         f"title='{w['attribution']:+.4f}'>{html.escape(w['word'])}</span>" for w in e.words)
        rows.append(f"<div class='x'><div class='meta'>{html.escape(e.label)} · p={e.probability:.3f} · "
                    f"δ={e.convergence_delta:+.2e}</div><div>{spans}</div></div>")
    style = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;color:#1d2430}"
             ".x{border-bottom:1px solid #e5e7eb;padding:.6rem 0}.meta{font-size:.8rem;color:#6b7280}"
             ".w{padding:1px 2px;border-radius:3px;line-height:1.9}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><p>Green: pushes towards the "
            "explained class; red: against (layer integrated gradients on the word embeddings).</p>"
            + "".join(rows) + "</body></html>")


def write_explanations(explanations: list[Explanation], directory: Path, name: str = "explanations") -> tuple[Path, Path]:
    from fmkit.fileio import write_json_atomic, write_text_atomic

    directory = Path(directory)
    json_path, html_path = directory / f"{name}.json", directory / f"{name}.html"
    write_json_atomic(json_path, [e.as_dict() for e in explanations])
    write_text_atomic(html_path, explanation_html(explanations, name.replace("_", " ")))
    return json_path, html_path
